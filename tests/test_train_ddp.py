"""scripts/train_ddp.py: DDP on 2 processes equals one process, resumes exactly, and
refuses bad configurations with a clear message.

The torchrun tests launch real processes (gloo on the CPU) on a tiny model.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_ddp.py"
sys.path.insert(0, str(ROOT / "scripts"))
import train_ddp  # noqa: E402

TINY = "--num-layers 1 --num-heads 2 --d-model 32 --block-size 32 --global-batch 8"
STEPS = 8


def torchrun(args: str, processes: int = 2, script: Path = SCRIPT):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={processes}", str(script), *args.split()]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def logged_losses(stdout: str) -> dict[int, str]:
    """{step: loss as printed} from the log lines of rank 0."""
    found = re.findall(r"^step +(\d+)  loss (\S+)", stdout, re.MULTILINE)
    return {int(step): loss for step, loss in found}


def summary(stdout: str) -> dict:
    return json.loads(next(line for line in stdout.splitlines() if line[:1] == "{"))


def largest_difference(stdout: str) -> float:
    last = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"check: largest parameter difference (\S+)", last)
    assert match, f"the last line is not the check's: {last!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def ddp_run():
    """8 steps of the tiny model on 2 processes, checked against one process."""
    return torchrun(f"{TINY} --steps {STEPS} --log-every 1 --check")


def test_two_processes_match_one(ddp_run):
    assert ddp_run.returncode == 0, ddp_run.stderr[-3000:]
    assert largest_difference(ddp_run.stdout) <= 1e-5
    result = summary(ddp_run.stdout)
    assert result["world_size"] == 2 and result["steps"] == STEPS
    assert result["tokens_per_s"] > 0 and result["allreduce_s_per_step"] > 0
    assert result["final_loss"] == pytest.approx(
        float(logged_losses(ddp_run.stdout)[STEPS]), abs=1e-6
    )
    assert len(logged_losses(ddp_run.stdout)) == STEPS  # rank 0 logs, alone


def test_check_fails_when_ddp_does_not_average_gradients(tmp_path):
    # Each process keeps its own gradients (DDP's no_sync): the check must catch it,
    # and torchrun's exit status must say so.
    unsynced = tmp_path / "unsynced.py"
    unsynced.write_text(
        f"import sys\nsys.path.insert(0, {str(SCRIPT.parent)!r})\n"
        "import train_ddp\n"
        "step = train_ddp.train_step\n"
        "def unsynced_step(model, *args):\n"
        "    with model.no_sync():\n"
        "        return step(model, *args)\n"
        "train_ddp.train_step = lambda model, *args: (\n"
        "    unsynced_step(model, *args) if isinstance(model, train_ddp.DDP)\n"
        "    else step(model, *args))\n"
        "sys.exit(train_ddp.main())\n"
    )
    result = torchrun(f"{TINY} --steps 4 --check", script=unsynced)
    assert result.returncode != 0
    assert largest_difference(result.stdout) > 1e-3


def test_compare_parameters_reports_a_perturbation():
    config = train_ddp.Config(
        train_ddp.GPTConfig(vocab_size=20, num_layers=1, num_heads=2, d_model=16)
    )
    model, _ = train_ddp.new_model(config, torch.device("cpu"))
    same, _ = train_ddp.new_model(config, torch.device("cpu"))
    assert train_ddp.compare_parameters(model, same) == (0.0, True)
    with torch.no_grad():
        same.transformer.h[0].mlp.c_fc.weight[3, 5] += 1e-3
    largest, passed = train_ddp.compare_parameters(model, same)
    assert largest == pytest.approx(1e-3, rel=1e-3) and not passed


def test_resume_on_two_processes_continues_exactly(tmp_path, ddp_run):
    checkpoint = tmp_path / "run"
    first = torchrun(f"{TINY} --steps {STEPS // 2} --checkpoint {checkpoint}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((checkpoint / "run.json").read_text())["step"] == STEPS // 2
    rest = torchrun(
        f"{TINY} --steps {STEPS} --log-every 1 --checkpoint {checkpoint} --resume"
    )
    assert rest.returncode == 0, rest.stderr[-3000:]
    resumed, uninterrupted = logged_losses(rest.stdout), logged_losses(ddp_run.stdout)
    assert sorted(resumed) == list(range(STEPS // 2 + 1, STEPS + 1))
    assert resumed == {step: uninterrupted[step] for step in resumed}
    assert summary(rest.stdout)["final_loss"] == summary(ddp_run.stdout)["final_loss"]


@pytest.fixture
def small_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("In the beginning was the word, and the word was short.\n" * 40)
    return path


def run_main(args: str, capsys) -> str:
    """main() in this process (one process, no torchrun); its standard output."""
    threads = torch.get_num_threads()
    assert train_ddp.main(f"{args} --threads {threads}".split()) == 0
    return capsys.readouterr().out


def test_resume_in_one_process_continues_exactly(tmp_path, small_corpus, capsys):
    common = f"{TINY} --corpus {small_corpus} --log-every 1"
    whole = logged_losses(run_main(f"{common} --steps 6 --check", capsys))
    checkpoint = tmp_path / "run"
    run_main(f"{common} --steps 3 --checkpoint {checkpoint} --save-every 2", capsys)
    rest = run_main(f"{common} --steps 6 --checkpoint {checkpoint} --resume", capsys)
    assert logged_losses(rest) == {step: whole[step] for step in (4, 5, 6)}
    safe = torch.load(checkpoint / "optimizer.pt", weights_only=True)  # no pickles
    assert safe["state"][0]["step"] == 6


def test_global_batch_is_a_function_of_the_step():
    config = train_ddp.Config(
        train_ddp.GPTConfig(vocab_size=50, block_size=8), global_batch=6
    )
    ids = torch.arange(1000) % 50
    x, y = train_ddp.global_batch(7, ids, config)
    assert x.shape == y.shape == (6, 8) and torch.equal(x[:, 1:], y[:, :-1])
    train_ddp.global_batch(6, ids, config)  # drawing others first changes nothing
    assert torch.equal(train_ddp.global_batch(7, ids, config)[0], x)
    assert not torch.equal(train_ddp.global_batch(8, ids, config)[0], x)


def test_global_batch_not_divisible_by_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="global_batch=5 is not divisible by world_si"):
        train_ddp.main(["--global-batch", "5"])


def test_global_batch_not_divisible_under_torchrun():
    result = torchrun(f"{TINY} --global-batch 5 --steps 2")
    assert result.returncode != 0
    assert "train_ddp.py: error: global_batch=5 is not divisible by world_size=2" in (
        result.stderr
    )


def test_missing_corpus_is_named(tmp_path):
    missing = tmp_path / "no_such_corpus.txt"
    with pytest.raises(SystemExit, match=f"corpus file not found: {missing}"):
        train_ddp.main(["--corpus", str(missing)])
    # as a script: exit status 1 and the message, no traceback
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--corpus", str(missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    message = f"train_ddp.py: error: corpus file not found: {missing}"
    assert result.stderr.strip() == message


def test_checkpoint_of_another_config_is_refused(tmp_path, small_corpus, capsys):
    checkpoint = tmp_path / "run"
    common = f"--corpus {small_corpus} --num-heads 2 --global-batch 4"
    run_main(f"{common} --steps 1 --d-model 32 --checkpoint {checkpoint}", capsys)
    resume = f"{common} --steps 2 --checkpoint {checkpoint} --resume"
    with pytest.raises(SystemExit) as refused:
        train_ddp.main(f"{resume} --d-model 48 --block-size 16".split())
    assert str(refused.value) == (
        f"train_ddp.py: error: the checkpoint in {checkpoint} is of another config: "
        "block_size=64 (checkpoint) vs 16 (now), d_model=32 (checkpoint) vs 48 (now), "
        "dim_feedforward=128 (checkpoint) vs 192 (now)"
    )
    other_text = tmp_path / "other.txt"
    other_text.write_text("abc " * 100)  # 4 characters, not the first corpus's
    with pytest.raises(SystemExit, match=r"another config: vocab_size=\d+ \(checkp"):
        train_ddp.main(f"{resume} --d-model 32 --corpus {other_text}".split())
    with pytest.raises(SystemExit, match="no checkpoint to resume from"):
        train_ddp.main(f"{common} --checkpoint {tmp_path / 'none'} --resume".split())
