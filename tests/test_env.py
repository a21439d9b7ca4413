"""utils.env: seeds, generators, devices and threads."""

import os
import random
import time

import numpy as np
import pytest
import torch

from utils import env


def test_set_seed_makes_torch_repeatable():
    env.set_seed(123)
    a = torch.randn(5)
    env.set_seed(123)
    assert torch.equal(a, torch.randn(5))


def test_set_seed_seeds_numpy_and_python_too():
    env.set_seed(7)
    first = (random.random(), np.random.rand())
    env.set_seed(7)
    assert (random.random(), np.random.rand()) == first


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_set_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        env.set_seed(seed)


def test_make_generator_from_an_int_is_fresh_and_seeded():
    a, b = env.make_generator(5), env.make_generator(5)
    assert a is not b
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
    assert not torch.equal(
        torch.randn(4, generator=env.make_generator(6)),
        torch.randn(4, generator=env.make_generator(5)),
    )
    assert torch.equal(
        torch.randn(3, generator=env.make_generator()),
        torch.randn(3, generator=torch.Generator().manual_seed(0)),
    )  # default seed 0


def test_make_generator_passes_a_generator_through():
    g = torch.Generator().manual_seed(3)
    assert env.make_generator(g) is g


def test_make_generator_leaves_the_global_state_alone():
    before = torch.get_rng_state()
    torch.randn(3, generator=env.make_generator(11))
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("seed", [-1, 1.0, "0", True, None])
def test_make_generator_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        env.make_generator(seed)


def test_get_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.get_device().type == expected
    assert env.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer"):
        env.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            env.get_device("cuda")


def test_limit_threads(monkeypatch):
    original = torch.get_num_threads()
    try:
        assert env.limit_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("COURSE_THREADS", "3")
        assert env.limit_threads() == 3 and torch.get_num_threads() == 3
        monkeypatch.delenv("COURSE_THREADS")
        assert env.limit_threads() == 2  # the course's laptop budget
        with pytest.raises(ValueError, match="n must be"):
            env.limit_threads(0)
        with pytest.raises(ValueError, match="n must be"):
            env.limit_threads(1.5)
    finally:
        torch.set_num_threads(original)


# --- COURSE_SEED: every training and sampling seed moves, the data splits do not ---


def test_course_seed_shifts_set_seed_and_make_generator(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "3")
    env.set_seed(2)
    shifted = torch.randn(4)
    from_generator = torch.randn(4, generator=env.make_generator(2))
    monkeypatch.delenv("COURSE_SEED")
    env.set_seed(5)
    assert torch.equal(shifted, torch.randn(4))
    assert torch.equal(from_generator, torch.randn(4, generator=env.make_generator(5)))
    assert env.course_seed() == 0


def test_split_generator_ignores_course_seed(monkeypatch):
    unshifted = torch.randn(4, generator=env.split_generator(2))
    monkeypatch.setenv("COURSE_SEED", "3")
    assert torch.equal(unshifted, torch.randn(4, generator=env.split_generator(2)))
    g = torch.Generator()
    assert env.split_generator(g) is g


@pytest.mark.parametrize("value", ["-1", "1.5", "one", ""])
def test_a_bad_course_seed_is_named(monkeypatch, value):
    monkeypatch.setenv("COURSE_SEED", value)
    with pytest.raises(ValueError, match="COURSE_SEED must be an int >= 0"):
        env.set_seed(0)


def test_course_seed_changes_what_a_chapter_trains_not_its_split(monkeypatch):
    """Chapter 10's helpers: the same held-out digits, another trained model."""
    from utils.cnn import CNN, CNNConfig
    from utils.experiments import vit_digits as vd

    def run():
        digits = vd.load_digits_split(n_test=200)
        models = {"CNN": (lambda: CNN(CNNConfig(channels=(4, 8))), 0)}
        accuracy, trained = vd.data_size_sweep(models, digits, [64], [0], steps=3)
        weights = trained["CNN"][0].state_dict()
        return digits.test_part(), accuracy["CNN"], weights

    (test_x, test_y), accuracy, weights = run()
    monkeypatch.setenv("COURSE_SEED", "1")
    (test_x1, test_y1), accuracy1, weights1 = run()
    assert torch.equal(test_x, test_x1) and torch.equal(test_y, test_y1)
    assert any(not torch.equal(weights[k], weights1[k]) for k in weights)
    monkeypatch.setenv("COURSE_SEED", "0")
    _, again, weights0 = run()
    assert torch.equal(again, accuracy)
    assert all(torch.equal(weights[k], weights0[k]) for k in weights)


def test_seeded_blocks_are_repeatable_and_restore_every_generator():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with env.seeded(5):
        inside = random.random(), np.random.rand(), torch.rand(1)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    env.set_seed(5)
    assert (random.random(), np.random.rand(), torch.rand(1)) == inside


@pytest.mark.parametrize(
    "preset, busy, expected",
    [(None, 0.0, None), (None, 0.49, None), (None, 0.5, "100"), ("5", 1.0, "5")],
)
def test_the_openmp_spin_is_short_only_on_a_busy_machine(monkeypatch, preset, busy,
                                                         expected):
    from utils import threads

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    if preset is not None:
        monkeypatch.setenv("GOMP_SPINCOUNT", preset)
    monkeypatch.setattr(threads, "other_busy_cpus", lambda: busy)
    threads.choose_openmp_spin()
    assert os.environ.get("GOMP_SPINCOUNT") == expected


def test_a_busy_process_is_seen_as_a_busy_cpu():
    import subprocess
    import sys

    from utils.threads import other_busy_cpus

    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert other_busy_cpus(window=0.3) >= 0.5
    finally:
        process.kill()
        process.wait()


def test_busy_cpus_counts_all_but_idle_and_iowait(tmp_path):
    from utils.threads import busy_cpus, other_busy_cpus, read_cpu_ticks

    stat = tmp_path / "stat"
    stat.write_text("cpu  10 1 20 300 40 2 3 0 0 0\ncpu0 5 0 10 150 20 1 1 0 0 0\n")
    assert read_cpu_ticks(str(stat)) == [10, 1, 20, 300, 40, 2, 3, 0, 0, 0]
    before = [10, 1, 20, 300, 40, 2, 3, 0, 0, 0]
    after = [70, 1, 40, 500, 80, 2, 7, 0, 0, 0]  # +60 user +20 system +4 irq, ...
    assert busy_cpus(before, after, cpus=4) == pytest.approx(4 * 84 / 324)
    assert busy_cpus(before, before, cpus=4) == 0.0  # no time passed
    assert other_busy_cpus(0.0, str(tmp_path / "missing")) == 0.0  # not Linux
