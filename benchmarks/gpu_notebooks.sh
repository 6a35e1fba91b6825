#!/usr/bin/env bash
# The GPU-capable notebooks in quick mode on a machine with an NVIDIA GPU and CuPy: each one as
# `scratchnet run NN-name --quick --device gpu` (or, without Jupyter, its code cells in one Python
# process with SCRATCHNET_DEVICE=gpu), each with its own timeout, logs and metrics under $OUT (else
# runs/gpu_notebooks/). A companion of gpu_check.sh, sized to fit a 10-minute slot on its own.
# Data: the notebooks read $SCRATCHNET_DATA, by default datasets/ inside the repository (git-ignored by
# the datasets/*/ rule): MNIST and Fashion-MNIST for the default list (42 MB). Bring them with the tree.
#
#   bash benchmarks/gpu_notebooks.sh                  # the default list below
#   bash benchmarks/gpu_notebooks.sh 11-densenet 16-gru   # others (16 needs datasets/fsdd)
# Exit status: the number of notebooks that failed or timed out.
set -u
cd "$(dirname "$0")/.."
LOG="${OUT:-runs/gpu_notebooks}"
mkdir -p "$LOG" && LOG="$(cd "$LOG" && pwd)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SCRATCHNET_PROGRESS=0 MPLBACKEND=Agg
export SCRATCHNET_DATA="${SCRATCHNET_DATA:-$PWD/datasets}" SCRATCHNET_QUICK=1 SCRATCHNET_DEVICE=gpu
PY="${PYTHON:-python3}"
PER_NOTEBOOK="${PER_NOTEBOOK:-100}"  # seconds each
NOTEBOOKS=("$@")
[ "${#NOTEBOOKS[@]}" -gt 0 ] || NOTEBOOKS=(05-convolution 06-lenet5 10-resnet 23-vit 33-pruning)
if "$PY" -c "import nbclient, nbformat, ipykernel" 2>/dev/null; then JUPYTER=1; else JUPYTER=0; fi
failed=0
for name in "${NOTEBOOKS[@]}"; do  # one notebook at a time, each in a fresh process
    echo "== $name (quick mode, gpu)" | tee "$LOG/$name.log"
    start=$(date +%s)
    if [ "$JUPYTER" -eq 1 ]; then
        timeout "$PER_NOTEBOOK" "$PY" -m scratchnet.cli run "$name" --quick --device gpu --json --out "$LOG" \
            >> "$LOG/$name.log" 2>&1
    else
        SCRATCHNET_RECORD="$LOG/$name.metrics.json" timeout "$PER_NOTEBOOK" "$PY" benchmarks/run_cells.py \
            "notebooks/$name.ipynb" >> "$LOG/$name.log" 2>&1
    fi
    rc=$?
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
    echo "$name: exit $rc in $(( $(date +%s) - start )) s" | tee -a "$LOG/summary.log"
    [ "$rc" -eq 0 ] || tail -n 25 "$LOG/$name.log"
    [ -f "$LOG/$name.metrics.json" ] && cat "$LOG/$name.metrics.json" && echo
done
echo "== gpu_notebooks: $failed of ${#NOTEBOOKS[@]} failed; logs in $LOG"
exit "$failed"
