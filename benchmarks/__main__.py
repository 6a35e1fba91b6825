"""``python -m benchmarks [PATTERN] [--repeats N] [--warmup N] [--json PATH] [--list] [--device cpu|gpu]``."""
import sys

from .harness import main

sys.exit(main())
