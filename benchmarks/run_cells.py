"""Execute a notebook's code cells in order in this Python process, as its kernel would.

For machines without Jupyter (nbclient, ipykernel): ``python benchmarks/run_cells.py notebooks/NN-name.ipynb``.
The working directory becomes the notebook's folder, as under ``scratchnet run``; the settings come from
the environment (``SCRATCHNET_QUICK``, ``SCRATCHNET_DEVICE``, ``SCRATCHNET_RECORD`` for the metrics).
Each cell's number is printed before it runs, so a failure names its cell.
"""
import json
import os
import sys
from pathlib import Path


def main(argv) -> int:
    if len(argv) != 2:
        print("usage: python benchmarks/run_cells.py NOTEBOOK.ipynb", file=sys.stderr)
        return 2
    path = Path(argv[1]).resolve()
    nb = json.loads(path.read_text(encoding="utf-8"))
    os.chdir(path.parent)
    scope = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):  # the code cells in order, one namespace, as one kernel
        if cell["cell_type"] == "code":
            print(f"--- cell {i}", flush=True)
            exec(compile("".join(cell["source"]), f"{path.name} cell {i}", "exec"), scope)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
