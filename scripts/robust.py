"""`make robust`: execute the chapters under a matrix of seeds and kernel paths.

A reader runs a chapter on another CPU, in Colab or Binder, where the last digits
differ and training drifts. Each run of the matrix executes every chapter in a fresh
kernel with its own ``COURSE_SEED`` (0-4), kernel path (PyTorch's native one, and
``ATEN_CPU_CAPABILITY=default``, the portable kernels a CPU without AVX2 takes) and,
once, one thread. Claims are recorded instead of stopping the chapter
(``COURSE_CLAIMS=record``, see utils/claims.py). Every glued value and every claim's
outcome per run go to ``_build/robust.json``; two tables follow: per claim, the runs in
which it held; per glued number that differs between runs, its minimum, median and
maximum. ``CHAPTERS=07,10`` (or ``--chapters``) restricts it; ``--resume`` keeps the
runs already in the report (a chapter that changed since, or broke, runs again);
``--merge`` joins reports written elsewhere (the weekly workflow runs one job per run).
It exits 1 if any claim failed or any chapter broke.
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "robust.json"
GLUE_PREFIX = "application/papermill.record/"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in tracebacks


def matrix(seeds: list[int], kernels: list[str], one_thread: str) -> list[dict]:
    """The runs: every seed on every kernel path, plus seed 0 on one thread."""
    runs = [
        {"label": f"seed {s}, {k}", "seed": s, "kernel": k, "threads": 2}
        for k in kernels
        for s in seeds
        if one_thread != "only"
    ]
    if one_thread != "no":
        runs.append(
            {
                "label": "seed 0, native, 1 thread",
                "seed": 0,
                "kernel": "native",
                "threads": 1,
            }
        )
    return runs


def glued_values(notebook) -> dict:
    """Every value a notebook glued: its plain-text form, as a number where it is one."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = data.get(GLUE_PREFIX + "text/plain")
            if text is None:
                continue
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            try:
                values[name] = float(text.replace("np.float64(", "").rstrip(")"))
            except ValueError:
                values[name] = text.strip("'\"")
    return values


def execute(path: Path) -> dict:
    """Execute one chapter in a fresh kernel (in a child process, whose environment
    the kernel inherits)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    error = None
    try:
        NotebookClient(
            notebook,
            timeout=900,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    except Exception as failure:  # a broken cell: reported, the matrix goes on
        error = f"{type(failure).__name__}: {str(failure)[-1500:]}"
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "error": error,
        "glue": glued_values(notebook),
    }


def sha(path: Path) -> str:
    """The chapter's content hash: a resumed report re-runs a chapter that changed."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_chapter(path: Path, run: dict) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as log:
        log_path = Path(log.name)
    env = {
        **os.environ,
        "COURSE_SEED": str(run["seed"]),
        "COURSE_THREADS": str(run["threads"]),
        "COURSE_CLAIMS": "record",
        "COURSE_CLAIMS_LOG": str(log_path),
        "PYTHONHASHSEED": "0",
    }
    env.pop("ATEN_CPU_CAPABILITY", None)
    if run["kernel"] != "native":
        env["ATEN_CPU_CAPABILITY"] = run["kernel"]
    child = subprocess.run(
        [sys.executable, __file__, "--notebook", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    if child.returncode == 0:
        result = json.loads(child.stdout.strip().splitlines()[-1])
    else:
        result = {"seconds": None, "error": child.stderr[-1500:], "glue": {}}
    if result["error"]:
        result["error"] = ANSI.sub("", result["error"])
    lines = log_path.read_text().splitlines()
    log_path.unlink()
    result["claims"] = [json.loads(line) for line in lines]
    return result


def claim_table(report: dict) -> list[str]:
    """Per claim: in how many runs it held, and the runs where it did not."""
    rows, failed_any = {}, False
    for label, chapters in report["runs"].items():
        for chapter, result in chapters.items():
            for record in result["claims"]:
                row = rows.setdefault(
                    (chapter, record["claim"]), {"held": 0, "not": []}
                )
                if record["holds"]:
                    row["held"] += 1
                else:
                    row["not"].append(f"{label}: {record['numbers']}")
                    failed_any = True
    lines = ["| chapter | claim | held | failed in |", "|---|---|---|---|"]
    for (chapter, name), row in sorted(rows.items()):
        total = row["held"] + len(row["not"])
        lines.append(
            f"| {chapter[:2]} | {name} | {row['held']}/{total} | {'; '.join(row['not'])} |"
        )
    return lines, failed_any


def number_table(report: dict) -> list[str]:
    """Per glued number that is not the same in every run: min, median, max."""
    values = {}
    for chapters in report["runs"].values():
        for chapter, result in chapters.items():
            for key, value in result["glue"].items():
                if isinstance(value, float):
                    values.setdefault((chapter, key), []).append(value)
    lines = [
        "| chapter | glued number | runs | min | median | max |",
        "|---|---|---|---|---|---|",
    ]
    for (chapter, key), numbers in sorted(values.items()):
        if min(numbers) != max(numbers):
            low, mid, high = min(numbers), statistics.median(numbers), max(numbers)
            lines.append(
                f"| {chapter[:2]} | {key} | {len(numbers)} | {low:.4g} | {mid:.4g} | {high:.4g} |"
            )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notebook", help=argparse.SUPPRESS)
    parser.add_argument("--chapters", default=os.environ.get("CHAPTERS", ""))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--kernels", default="native,default")
    parser.add_argument("--one-thread", choices=("yes", "no", "only"), default="yes")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--merge", nargs="+", type=Path, help="reports to join, no runs"
    )
    args = parser.parse_args()
    if args.notebook:
        print(json.dumps(execute(Path(args.notebook))))
        return

    out = args.out
    report = json.loads(out.read_text()) if args.resume else {"runs": {}}
    if args.merge:
        for path in args.merge:
            report["runs"].update(json.loads(path.read_text())["runs"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))
    else:
        wanted = [c for c in args.chapters.replace(" ", ",").split(",") if c]
        paths = [
            p
            for p in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
            if not wanted or p.name[:2] in wanted
        ]
        seeds = [int(s) for s in args.seeds.split(",")]
        runs = matrix(seeds, args.kernels.split(","), args.one_thread)
        out.parent.mkdir(parents=True, exist_ok=True)
        for run in runs:
            done = report["runs"].setdefault(run["label"], {})
            for path in paths:
                kept = done.get(path.stem)
                if kept and not kept["error"] and kept.get("sha") in (None, sha(path)):
                    continue  # this run of this chapter, as it is now, is in the report
                result = run_chapter(path, run)
                result["sha"] = sha(path)
                done[path.stem] = result
                out.write_text(json.dumps(report, indent=1))
                held = sum(c["holds"] for c in result["claims"])
                status = "ERROR" if result["error"] else "ok"
                print(
                    f"{run['label']:<28} {path.stem:<28} {result['seconds'] or 0:6.1f} s  "
                    f"claims {held}/{len(result['claims'])}  {status}",
                    flush=True,
                )
    claims, failed_any = claim_table(report)
    print("\nClaims: the runs in which each held\n" + "\n".join(claims))
    print(
        "\nGlued numbers that differ between runs\n" + "\n".join(number_table(report))
    )
    broken = [
        f"{label} / {chapter}: {result['error'][:300]}"
        for label, chapters in report["runs"].items()
        for chapter, result in chapters.items()
        if result["error"]
    ]
    if broken:
        print("\nChapters that broke:\n" + "\n".join(broken))
    print(f"\nWritten to {out}")
    sys.exit(1 if failed_any or broken else 0)


if __name__ == "__main__":
    main()
