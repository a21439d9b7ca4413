"""scripts/bench.py and benchmarks/timing.py: the slowest cells of a chapter, from
nbclient's timestamps; the busy process of `LOAD=1`."""

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench import slowest_cells  # noqa: E402


def _cell(cell_id, begin=None, end=None):
    cell = nbformat.v4.new_code_cell("pass")
    cell.id = cell_id
    if begin is not None:
        cell.metadata["execution"] = {
            "iopub.execute_input": f"2026-12-06T06:00:{begin:02d}.000000Z",
            "shell.execute_reply": f"2026-12-06T06:00:{end:02d}.500000Z",
        }
    return cell


def test_slowest_cells_are_the_longest_executions_in_order():
    notebook = nbformat.v4.new_notebook(
        cells=[
            _cell("a", 0, 1),
            _cell("b", 1, 9),
            _cell("untimed"),
            _cell("c", 9, 12),
            _cell("d", 12, 13),
        ]
    )
    assert slowest_cells(notebook) == [["b", 8.5], ["c", 3.5], ["a", 1.5]]
    assert slowest_cells(notebook, n=1) == [["b", 8.5]]


def test_the_busy_process_runs_inside_the_block_only():
    from benchmarks.timing import busy_process

    with busy_process() as process:
        assert process.poll() is None  # running
    assert process.poll() is not None  # killed and reaped
