"""scripts/robust.py: the matrix of runs, the glued values it reads from an executed
chapter, and its two tables (the chapters themselves run only under `make robust`)."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import robust  # noqa: E402

PREFIX = robust.GLUE_PREFIX


def test_the_matrix_has_every_seed_on_every_kernel_path_and_one_thread():
    runs = robust.matrix([0, 1], ["native", "default"], "yes")
    assert [r["label"] for r in runs] == [
        "seed 0, native",
        "seed 1, native",
        "seed 0, default",
        "seed 1, default",
        "seed 0, native, 1 thread",
    ]
    assert runs[-1]["threads"] == 1 and runs[0]["threads"] == 2
    assert robust.matrix([0], ["native"], "no") == runs[:1]
    assert robust.matrix([0, 1], ["native"], "only") == runs[-1:]


def _glue(name, text):
    return nbformat.v4.new_output(
        "display_data",
        data={PREFIX + "text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": PREFIX}},
    )


def test_glued_values_are_read_as_numbers_where_they_are_numbers():
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [
        _glue("loss", "1.25"),
        _glue("ratio", "np.float64(0.5)"),
        _glue("word", "'beats'"),
        nbformat.v4.new_output("stream", text="printed, not glued"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert robust.glued_values(notebook) == {
        "loss": 1.25,
        "ratio": 0.5,
        "word": "beats",
    }


REPORT = {
    "runs": {
        "seed 0, native": {
            "07_gpt": {
                "seconds": 70.0,
                "error": None,
                "glue": {"acc": 50.0, "steps": 400.0, "word": "beats"},
                "claims": [{"claim": "GPT wins", "holds": True, "numbers": {"a": 1}}],
            }
        },
        "seed 1, native": {
            "07_gpt": {
                "seconds": 71.0,
                "error": None,
                "glue": {"acc": 40.0, "steps": 400.0, "word": "trails"},
                "claims": [{"claim": "GPT wins", "holds": False, "numbers": {"a": 0}}],
            }
        },
    }
}


def test_the_claim_table_counts_the_runs_and_names_the_failures():
    lines, failed = robust.claim_table(REPORT)
    assert failed
    assert lines[2] == "| 07 | GPT wins | 1/2 | seed 1, native: {'a': 0} |"


def test_the_number_table_shows_only_numbers_that_vary():
    lines = robust.number_table(REPORT)
    assert lines[2:] == ["| 07 | acc | 2 | 40 | 45 | 50 |"]


def test_merged_reports_print_the_tables_and_fail_on_a_failed_claim(tmp_path):
    part = tmp_path / "part.json"
    part.write_text(json.dumps(REPORT))
    out = tmp_path / "robust.json"
    script = Path(robust.__file__)
    result = subprocess.run(
        [sys.executable, script, "--merge", part, "--out", out],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1  # a claim failed in one run
    assert "| 07 | GPT wins | 1/2 |" in result.stdout
    assert json.loads(out.read_text()) == REPORT
