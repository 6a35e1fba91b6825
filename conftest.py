"""Repository-wide pytest setup (tests/ and the notebooks collected by nbmake): quick mode for
notebooks, a headless matplotlib backend."""
import os

os.environ.setdefault("SCRATCHNET_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
