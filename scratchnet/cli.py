"""The ``scratchnet`` command.

    scratchnet list                          chapters, their notebooks and the last recorded metrics
    scratchnet run 01-mlp [--quick] [--json] execute a notebook headless, print what it recorded
                          [--device gpu]     ... with SCRATCHNET_DEVICE=gpu for the notebook's kernel
    scratchnet gradcheck [PATTERN]           run the registered gradient checks (exit 1 on a failure)
    scratchnet bench [PATTERN] [--repeats N] timed workloads beside PyTorch
                     [--device gpu]          ... on CuPy beside PyTorch on CUDA
    scratchnet data verify [NAME]            hash every dataset file again against the registry
    scratchnet book [--out DIR]              the chapters and notebooks as a website (DIR/index.html)

``run --json`` ends with one line of strict JSON: a metric that is NaN or infinite is written as
null. ``run --device gpu`` first checks that the notebook reads the setting (a CPU-only notebook: exit 1,
one line saying so and why, ``runs.CPU_ONLY``), then that CuPy and a CUDA device are usable (exit 1 naming
what is missing), then sets ``SCRATCHNET_DEVICE=gpu`` for the kernel; notebooks read it with
``scratchnet.backend.device_from_env()``. ``run`` and ``bench`` apply the allocator tuning of training
loops (``scratchnet/_alloc.py``; ``SCRATCHNET_MALLOC=default`` opts out): ``bench`` in its own process,
``run`` in the notebook's kernel.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

__all__ = ["main"]


def _repo_root() -> Path:
    """The current folder when it holds notebooks/ or chapters/, else the repository next to the package."""
    cwd = Path.cwd()
    if (cwd / "notebooks").is_dir() or (cwd / "chapters").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def _format_metrics(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def cmd_list(args) -> int:
    """One line per chapter: number, name, chapter?, notebook?, metrics last recorded under runs/."""
    root = _repo_root()
    notebooks = {p.stem for p in (root / "notebooks").glob("*.ipynb")}
    chapters = {p.stem for p in (root / "chapters").glob("*.md")}
    stems = sorted(notebooks | chapters)
    if not stems:
        print(f"no chapters or notebooks found under {root}")
        return 0
    runs = Path(args.runs)
    print(f"{'NN':<4}{'name':<22}{'chapter':<9}{'notebook':<10}last run")
    for stem in stems:  # one line per chapter
        number, _, name = stem.partition("-")
        record = runs / f"{stem}.metrics.json"
        last = _format_metrics(json.loads(record.read_text())) if record.exists() else "-"
        print(f"{number:<4}{name or stem:<22}{'yes' if stem in chapters else 'no':<9}"
              f"{'yes' if stem in notebooks else 'no':<10}{last}")
    return 0


def cmd_run(args) -> int:
    """Execute one notebook headless; print its metrics (and one strict-JSON line with --json, NaN and
    ±inf as null). The kernel applies the allocator tuning (``SCRATCHNET_MALLOC=keep``, see ``runs``)."""
    from contextlib import nullcontext

    from .backend import check_device
    from .runs import NotebookError, _environ, check_notebook_device, find_notebook, json_safe, run_notebook
    device = getattr(args, "device", None)
    try:
        if device == "gpu":  # a CPU-only notebook is refused first, whatever this machine has
            check_notebook_device(find_notebook(args.name), device)
        if device is not None:
            check_device(device, "--device")
        with _environ(SCRATCHNET_DEVICE=device) if device is not None else nullcontext():
            metrics = run_notebook(args.name, quick=args.quick, timeout=args.timeout, out_dir=args.out)
    except (FileNotFoundError, ValueError, RuntimeError, NotebookError) as e:
        print(f"scratchnet run: {e}", file=sys.stderr)
        return 1
    for key, value in metrics.items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        print(json.dumps(json_safe(metrics), allow_nan=False))
    return 0


def cmd_gradcheck(args) -> int:
    """Print every matching case's report, then "N passed, M failed"; 1 when anything failed."""
    from .gradcheck import run_cases
    passed = failed = 0
    cases = run_cases(args.pattern)
    while True:  # one report per iteration; a case that raises counts as failed
        try:
            name, report = next(cases)
        except StopIteration:
            break
        except Exception:  # the case itself crashed: report it and carry on with the next
            failed += 1
            print(f"gradcheck: a case raised an error\n{traceback.format_exc()}")
            continue
        print(f"[{name}] {report}\n")
        passed, failed = passed + report.ok, failed + (not report.ok)
    if passed + failed == 0:
        print(f"no gradcheck case matches {args.pattern!r}")
        return 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_bench(args) -> int:
    """Run ``scratchnet.bench.run_benchmarks(pattern, repeats)``, which prints its own table; the
    allocator tuning of training loops is applied first (``keep_freed_memory``), as ``fit`` does."""
    from ._alloc import keep_freed_memory
    keep_freed_memory()
    try:
        from .bench import run_benchmarks
    except ImportError as e:
        print(f"scratchnet bench: the benchmarks are not available ({e})", file=sys.stderr)
        return 1
    options = {} if args.repeats is None else {"repeats": args.repeats}
    if args.json:
        options["json_path"] = args.json
    if args.device != "cpu":
        options["device"] = args.device
    try:
        results = run_benchmarks(args.pattern, **options)
    except RuntimeError as e:  # no benchmarks/ folder beside an installed package; --device gpu without a GPU
        print(f"scratchnet bench: {e}", file=sys.stderr)
        return 1
    return 1 if results is not None and len(results) == 0 else 0


def cmd_data_verify(args) -> int:
    """Hash every file of NAME (or of every dataset present under the data root) against the registry's
    sha256, ignoring the record of earlier checks; one line per file that is missing or differs
    (every file with --verbose), a summary per dataset. Exit 1 when any file is missing or differs."""
    from .data.registry import data_root, dataset_info, list_datasets, verify_dataset
    from .progress import progress
    root = Path(args.root).expanduser() if args.root else data_root()
    if args.name is not None:
        try:
            dataset_info(args.name)
        except ValueError as e:
            print(f"scratchnet data verify: {e}", file=sys.stderr)
            return 1
        names = [args.name]
    else:
        names = list_datasets()
    failed = checked = 0
    for name in names:  # one dataset per pass
        folder = root / name
        if args.name is None and not folder.is_dir():
            print(f"{name}: not installed (no folder {folder})")
            continue
        files = dataset_info(name)["files"]
        counts = {"ok": 0, "missing": 0, "bad": 0}
        bar = progress(total=len(files), desc=name, unit="file", leave=False)

        def report(rel, problem, bar=bar, counts=counts, folder=folder):
            kind = "ok" if problem is None else ("missing" if problem == "missing" else "bad")
            counts[kind] += 1
            bar.update(1)
            if kind != "ok" or args.verbose:
                bar.write(f"  {kind.upper():<8}{folder / rel}" + (f": {problem}" if kind == "bad" else ""))

        with bar:
            verify_dataset(name, root=root, rehash=True, on_file=report)
        checked += 1
        failed += counts["missing"] + counts["bad"]
        print(f"{name}: {counts['ok']} of {len(files)} files match the registry"
              + (f", {counts['bad']} differ" if counts["bad"] else "")
              + (f", {counts['missing']} missing" if counts["missing"] else "") + f" ({folder})")
    if not checked:
        print(f"no dataset found under {root}")
    return 1 if failed else 0


def cmd_book(args) -> int:
    """Build the book website (``scratchnet/book.py``); 1 when Sphinx fails or, with --strict, warns."""
    from .book import build_book
    root = _repo_root()
    out = Path(args.out) if args.out else root / "_build" / "book"
    try:
        status = build_book(out, root=root, strict=args.strict, quiet=not args.verbose, fresh=args.fresh)
    except (RuntimeError, FileNotFoundError) as e:
        print(f"scratchnet book: {e}", file=sys.stderr)
        return 1
    if status == 0:
        print(f"the book is in {out}: open {out / 'index.html'}")
    return 1 if status else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="chapters, notebooks and the last recorded metrics")
    p.add_argument("--runs", default="runs", help="folder of saved runs (default: runs)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="execute a chapter's notebook headless and print its metrics")
    p.add_argument("name", help='notebook: "01-mlp", "01", "mlp" or a path to an .ipynb')
    p.add_argument("--quick", action="store_true", help="quick mode (SCRATCHNET_QUICK=1): small subset, few steps")
    p.add_argument("--json", action="store_true",
                   help="end with one line holding the metrics as strict JSON (NaN and infinity as null)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell (default: no limit)")
    p.add_argument("--out", default="runs", help="folder for the executed copy and metrics (default: runs)")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                   help="set SCRATCHNET_DEVICE for the notebook (default: inherit it, else the notebook's cpu); "
                        "gpu needs CuPy, a CUDA device and a notebook that reads the setting (the README lists them)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("gradcheck", help="run the registered gradient checks")
    p.add_argument("pattern", nargs="?", default=None, help="only cases whose name contains this")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("bench", help="run the timed benchmarks")
    p.add_argument("pattern", nargs="?", default=None, help="only benchmarks whose name contains this")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions (median reported)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="gpu: the GPU-capable workloads on CuPy beside PyTorch on CUDA (needs CuPy and a CUDA device)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("data", help="dataset maintenance")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("verify", help="hash every dataset file again and compare with the registry's sha256")
    p.add_argument("name", nargs="?", default=None, help="one dataset (default: every dataset present)")
    p.add_argument("--root", default=None, help="data root (default: $SCRATCHNET_DATA, else datasets/, else "
                                                "~/.cache/scratchnet)")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the files that match")
    p.set_defaults(func=cmd_data_verify)

    p = sub.add_parser("book", help="build the chapters and notebooks into a website (needs the book extra)")
    p.add_argument("--out", default=None, help="folder for the site (default: _build/book in the repository)")
    p.add_argument("--strict", action="store_true", help="treat every Sphinx warning as an error (as the tests do)")
    p.add_argument("--fresh", action="store_true", help="ignore the saved state of earlier builds")
    p.add_argument("-v", "--verbose", action="store_true", help="show Sphinx's progress, not only its warnings")
    p.set_defaults(func=cmd_book)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``scratchnet`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
