"""utils.claims: a claim that fails names itself and its numbers; verdicts are computed."""

import json

import pytest
import torch

from utils import claims
from utils.claims import ClaimFailed, claim, verdict


@pytest.fixture(autouse=True)
def checking(monkeypatch):
    monkeypatch.delenv("COURSE_CLAIMS", raising=False)
    monkeypatch.delenv("COURSE_CLAIMS_LOG", raising=False)


def test_a_claim_that_holds_passes_and_is_recorded():
    assert claim("the LSTM wins", True, lstm=0.9, rnn=0.5) is None  # prints nothing
    assert claims.RECORDED[-1] == {
        "claim": "the LSTM wins",
        "holds": True,
        "numbers": {"lstm": 0.9, "rnn": 0.5},
    }


def test_a_failing_claim_names_itself_and_shows_its_numbers():
    pretrained, scratch = torch.tensor([0.512, 0.422]), torch.tensor([0.437])
    with pytest.raises(ClaimFailed) as failed:
        claim(
            "pretrained beats scratch",
            pretrained.min() > scratch.max(),
            pretrained=pretrained,
            scratch=scratch,
        )
    message = str(failed.value)
    assert "'pretrained beats scratch' does not hold" in message
    assert "pretrained=[0.512, 0.422]" in message and "scratch=[0.437]" in message
    assert isinstance(failed.value, AssertionError)  # nbval and pytest show it as one
    assert claims.RECORDED[-1]["holds"] is False


def test_record_mode_records_a_failing_claim_without_raising(monkeypatch, tmp_path):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("COURSE_CLAIMS", "record")
    monkeypatch.setenv("COURSE_CLAIMS_LOG", str(log))
    claim("first", 1 > 2, gap=-1)
    claim("second", torch.tensor(True), ratio=torch.tensor(1.5))
    assert [r["holds"] for r in claims.RECORDED[-2:]] == [False, True]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [
        {"claim": "first", "holds": False, "numbers": {"gap": -1}},
        {"claim": "second", "holds": True, "numbers": {"ratio": 1.5}},
    ]


def test_bad_names_and_modes_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        claim("", True)
    monkeypatch.setenv("COURSE_CLAIMS", "warn")
    with pytest.raises(ValueError, match="COURSE_CLAIMS must be 'check' or 'record'"):
        claim("x", True)


def test_numbers_become_plain_json():
    claim("n", True, nan=float("nan"), grid=torch.ones(2, 2), model="ViT", n=3)
    assert claims.RECORDED[-1]["numbers"] == {
        "nan": "nan",
        "grid": [[1.0, 1.0], [1.0, 1.0]],
        "model": "ViT",
        "n": 3,
    }


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([3, 4], [1, 2], "beats"),
        ([1, 2], [3, 4], "trails"),
        ([1, 3], [2, 4], "ties"),  # overlapping ranges: inside the noise
        ([2, 3], [1, 2], "ties"),  # touching ranges are not a win
        (5.0, [4.0], "beats"),
    ],
)
def test_verdict_wins_only_when_the_ranges_do_not_overlap(a, b, expected):
    assert verdict(a, b, "beats", "trails", "ties") == expected


def test_verdict_margin():
    assert verdict([1.05], [1.0], "faster", "slower", "as fast", margin=0.1) == "as fast"
    assert verdict([1.2], [1.0], "faster", "slower", "as fast", margin=0.1) == "faster"
    assert verdict([0.8], [1.0], "faster", "slower", "as fast", margin=0.1) == "slower"


def test_verdict_needs_numbers():
    with pytest.raises(ValueError, match="a must hold at least one number"):
        verdict([], [1.0], "x", "y", "z")
