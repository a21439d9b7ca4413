"""Speed benchmarks that `make bench` runs after timing the chapters.

Each module here defines functions named ``bench_*`` that take no arguments and return a
list of result dicts: ``{"name": str, "ours_s": float, "reference_s": float, "ratio":
float, "target": str, "ok": bool}`` (``ratio`` = ours / reference; ``target`` says what
is asked, e.g. "<= 1.5"). Use :func:`benchmarks.timing.best_of` to time.
"""
