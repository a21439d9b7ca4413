"""`make bench`: time each chapter's execution and the from-scratch-vs-reference speed ratios.

Each chapter notebook runs in a fresh kernel, in its own process, on the course's two threads;
we record wall-clock seconds and the kernel's peak memory. Then every ``bench_*`` function in
``benchmarks/`` runs. The table is printed and written to ``_build/bench.json``.
Speed targets live here (and in benchmarks/), not in the unit tests.

``LOAD=1 make bench`` runs all of it with one busy process beside it (a learner's laptop
is rarely idle), and writes ``_build/bench-load.json``.
"""

import argparse
import importlib
import json
import os
import pkgutil
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import utils  # noqa: F401  (before torch, as in the chapters: its OpenMP setting)

ROOT = Path(__file__).resolve().parents[1]
LOAD = os.environ.get("LOAD") == "1"
OUT = ROOT / "_build" / ("bench-load.json" if LOAD else "bench.json")
# Execution budget per chapter on 2 CPU cores, in seconds (course plan, section 7; issues):
# the whole book in 600 s, no chapter over 120 s.
BUDGETS = {"00": 30, "04": 30, "05": 45}
DEFAULT_BUDGET = 120


def run_notebook(path: Path) -> dict:
    """Execute one notebook in a fresh kernel (child process); return seconds and peak RSS."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    seconds = time.perf_counter() - start
    # The kernel was this process's child and has exited: its peak RSS is in RUSAGE_CHILDREN (KiB).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "slowest_cells": slowest_cells(notebook),
    }


def slowest_cells(notebook, n: int = 3) -> list[list]:
    """The `n` code cells that took longest: [cell id, seconds], from the timestamps
    nbclient records in each cell's metadata."""
    from datetime import datetime

    timed = []
    for cell in notebook.cells:
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in times and "shell.execute_reply" in times:
            begin, end = (
                datetime.fromisoformat(times[k].replace("Z", "+00:00"))
                for k in ("iopub.execute_input", "shell.execute_reply")
            )
            timed.append([cell.get("id"), round((end - begin).total_seconds(), 1)])
    return sorted(timed, key=lambda row: -row[1])[:n]


def chapter_rows(pattern: str) -> list[dict]:
    rows = []
    for path in sorted((ROOT / "chapters").glob(pattern)):
        result = subprocess.run(
            [sys.executable, __file__, "--notebook", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"{path.name} failed:\n{result.stderr[-3000:]}")
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        budget = BUDGETS.get(path.name[:2], DEFAULT_BUDGET)
        rows.append(
            {
                "chapter": path.stem,
                **measured,
                "budget_s": budget,
                "ok": measured["seconds"] <= budget,
            }
        )
        slowest = ", ".join(
            f"{cell} {s:.0f} s" for cell, s in measured["slowest_cells"]
        )
        print(
            f"  {path.stem:<32} {measured['seconds']:7.1f} s  {measured['peak_mb']:7.0f} MB  "
            f"(budget {budget} s{'' if rows[-1]['ok'] else ', OVER'}; slowest cells: {slowest})",
            flush=True,
        )
    return rows


def speed_rows() -> list[dict]:
    import benchmarks

    rows = []
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        for name in sorted(n for n in dir(module) if n.startswith("bench_")):
            for row in getattr(module, name)():
                rows.append(row)
                ratio = "" if row["ratio"] is None else f"ratio {row['ratio']:6.2f}"
                print(
                    f"  {row['name']:<52} {row['ours_s'] * 1e3:9.1f} ms  {ratio:<14} target {row['target']}"
                    f"{'' if row['ok'] else '  MISSED'}",
                    flush=True,
                )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notebook", help=argparse.SUPPRESS)
    parser.add_argument(
        "--chapters", default="*.ipynb", help="glob of chapter notebooks to time"
    )
    parser.add_argument("--skip-chapters", action="store_true")
    args = parser.parse_args()
    if args.notebook:
        print(json.dumps(run_notebook(Path(args.notebook))))
        return
    import torch

    sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed
    from benchmarks.timing import busy_process
    from utils.env import limit_threads

    threads = limit_threads()
    print(f"torch {torch.__version__}, {threads} threads{LOAD * ', one busy process'}")
    with busy_process() if LOAD else nullcontext():
        print("Chapter execution (fresh kernel each):")
        chapters = [] if args.skip_chapters else chapter_rows(args.chapters)
        print("Speed (from scratch against reference):")
        speeds = speed_rows()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "threads": threads,
                "load": LOAD,
                "torch": torch.__version__,
                "chapters": chapters,
                "speed": speeds,
            },
            indent=2,
        )
    )
    total = sum(r["seconds"] for r in chapters)
    if chapters:
        slowest = max(chapters, key=lambda r: r["seconds"])
        print(
            f"Total chapter execution {total:.1f} s (target <= 600 s); slowest: "
            f"{slowest['chapter']} {slowest['seconds']:.1f} s"
        )
    print(f"Written to {OUT.relative_to(ROOT)}")
    missed = [r.get("chapter", r.get("name")) for r in chapters + speeds if not r["ok"]]
    if total > 600:
        missed.append("the whole book (over 600 s)")
    if missed:
        print("Missed targets:", ", ".join(missed))


if __name__ == "__main__":
    main()
