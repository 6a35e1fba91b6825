"""``python -m benchmarks [PATTERN] [--repeats N] [--warmup N] [--json PATH] [--list]``."""
import sys

from .harness import main

sys.exit(main())
