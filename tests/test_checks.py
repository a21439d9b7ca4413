"""utils.checks: every helper accepts good values and rejects bad ones, naming the argument."""

import math

import pytest
import torch

from utils.checks import (
    check_bool,
    check_choice,
    check_divisible,
    check_finite,
    check_ids,
    check_int,
    check_number,
    check_positive,
    check_probability,
    check_same_batch,
    check_tensor,
)

# --- check_int ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, minimum", [(1, 1), (7, 1), (0, 0), (-3, -5), (10**12, 1)]
)
def test_check_int_accepts_ints_at_or_above_the_minimum(value, minimum):
    assert check_int("size", value, minimum) == value


@pytest.mark.parametrize(
    "value", [0, -1, True, False, 1.0, 2.5, "3", None, [1], torch.tensor(3)]
)
def test_check_int_rejects_non_ints_bools_and_small_values(value):
    with pytest.raises(ValueError, match=r"size must be a positive int, got size="):
        check_int("size", value)


def test_check_int_names_its_minimum():
    with pytest.raises(ValueError, match=r"lag must be an int >= 0, got lag=-1"):
        check_int("lag", -1, minimum=0)
    with pytest.raises(ValueError, match=r"lag must be an int >= 0, got lag=True"):
        check_int("lag", True, minimum=0)


# --- check_number, check_positive, check_probability -----------------------------------------


@pytest.mark.parametrize("value", [0, 1, -2.5, 1e9, math.inf])
def test_check_number_accepts_ints_and_floats_and_returns_a_float(value):
    result = check_number("x", value)
    assert result == value and isinstance(result, float)


@pytest.mark.parametrize("value", [True, False, "1", None, [1.0], torch.tensor(1.0)])
def test_check_number_rejects_non_numbers(value):
    with pytest.raises(ValueError, match="x must be a number, got x="):
        check_number("x", value)


@pytest.mark.parametrize(
    "value, kwargs",
    [
        (-0.1, dict(low=0)),
        (2, dict(high=1)),
        (0, dict(low=0, low_open=True)),
        (math.nan, {}),
        (math.nan, dict(low=0, high=1)),
    ],
)
def test_check_number_rejects_values_out_of_range_and_nan(value, kwargs):
    with pytest.raises(ValueError, match=r"x must be in .*, got x="):
        check_number("x", value, **kwargs)


def test_check_number_bounds_in_the_message():
    assert (
        check_number("x", 0, low=0) == 0.0
        and check_number("x", 1, low=0, high=1) == 1.0
    )
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\], got x=1.5"):
        check_number("x", 1.5, low=0, high=1)
    with pytest.raises(ValueError, match=r"x must be in \(0, inf\], got x=0"):
        check_number("x", 0, low=0, low_open=True)


def test_check_number_shows_a_missing_lower_bound_as_minus_infinity():
    with pytest.raises(ValueError, match=r"x must be in \[-inf, 1\], got x=5"):
        check_number("x", 5, high=1)


def test_check_positive():
    assert check_positive("lr", 3e-4) == 3e-4 and check_positive("lr", 2) == 2.0
    for bad in (0, -1e-9, True, "0.1", math.nan):
        with pytest.raises(ValueError, match="lr must be"):
            check_positive("lr", bad)


def test_check_probability():
    assert (
        check_probability("dropout", 0) == 0.0
        and check_probability("dropout", 0.999) == 0.999
    )
    for bad in (1, 1.0, -0.1, math.nan):
        with pytest.raises(
            ValueError, match=r"dropout must be in \[0, 1\), got dropout="
        ):
            check_probability("dropout", bad)
    for bad in (True, "0.1", None):
        with pytest.raises(ValueError, match="dropout must be a number, got dropout="):
            check_probability("dropout", bad)


# --- check_bool, check_choice, check_divisible ------------------------------------------------


def test_check_bool_accepts_only_real_bools():
    assert check_bool("causal", True) is True and check_bool("causal", False) is False
    for bad in (0, 1, "False", "True", None, torch.tensor(True)):
        with pytest.raises(
            ValueError, match="causal must be True or False, got causal="
        ):
            check_bool("causal", bad)


def test_check_choice():
    assert check_choice("kind", "bias", ("all", "weight", "bias")) == "bias"
    with pytest.raises(
        ValueError, match="kind must be one of 'all', 'weight'; got kind='gates'"
    ):
        check_choice("kind", "gates", ("all", "weight"))
    with pytest.raises(ValueError, match="kind must be one of"):
        check_choice("kind", None, ("all",))


def test_check_divisible():
    check_divisible("d_model", 12, "num_heads", 4)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        check_divisible("d_model", 10, "num_heads", 3)


# --- tensors --------------------------------------------------------------------------------------


def test_check_tensor_accepts_matching_tensors_and_returns_them():
    x = torch.zeros(2, 5, 3)
    assert check_tensor("x", x, ("B", None, 3), dtype=torch.float32, floating=True) is x
    assert check_tensor("x", x) is x


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        ([1.0, 2.0], {}, "x must be a torch.Tensor, got list"),
        (
            torch.zeros(2, 4),
            dict(shape=("B", 3)),
            r"x must have shape \(B, 3\), got \(2, 4\)",
        ),
        (
            torch.zeros(2, 3, 1),
            dict(shape=("B", 3)),
            r"x must have shape \(B, 3\), got \(2, 3, 1\)",
        ),
        (
            torch.zeros(2, 3),
            dict(shape=(None, None, None)),
            r"x must have shape \(\*, \*, \*\)",
        ),
        (
            torch.zeros(2),
            dict(dtype=torch.long),
            "x must have dtype torch.int64, got torch.float32",
        ),
        (
            torch.zeros(2, dtype=torch.long),
            dict(floating=True),
            "x must be a floating-point tensor",
        ),
    ],
)
def test_check_tensor_rejects_wrong_types_shapes_and_dtypes(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_tensor("x", x, **kwargs)


def test_check_ids():
    ids = torch.tensor([[0, 4], [2, 3]])
    assert check_ids("idx", ids, 5) is ids
    assert check_ids("idx", torch.zeros(2, 0, dtype=torch.long), 5).shape == (
        2,
        0,
    )  # empty is fine
    with pytest.raises(
        ValueError,
        match=r"idx must be token ids in \[0, vocab_size=5\), got ids from 0 to 5",
    ):
        check_ids("idx", torch.tensor([[0, 5]]), 5)
    with pytest.raises(ValueError, match="got ids from -1 to 2"):
        check_ids("idx", torch.tensor([[-1, 2]]), 5)
    with pytest.raises(ValueError, match="idx must have dtype torch.int64"):
        check_ids("idx", torch.tensor([[0.0, 1.0]]), 5)
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\)"):
        check_ids("idx", torch.tensor([0, 1]), 5)


def test_check_same_batch():
    check_same_batch(q=torch.zeros(2, 3), k=torch.zeros(2, 5), v=torch.zeros(2, 5, 1))
    with pytest.raises(
        ValueError,
        match=r"q and k must have the same batch size, got 2 and 3 \(no broadcasting\)",
    ):
        check_same_batch(q=torch.zeros(2, 3), k=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="q and v must share dtype and device"):
        check_same_batch(
            q=torch.zeros(2), k=torch.zeros(2), v=torch.zeros(2, dtype=torch.float64)
        )


def test_check_finite_refuses_nan_and_infinities_and_counts_them():
    x = torch.randn(3, 4, requires_grad=True)
    assert check_finite("x", x) is x
    huge = torch.full((4,), 3e38)  # finite, though their sum overflows to inf
    assert check_finite("huge", huge) is huge
    assert check_finite("ids", torch.arange(5)) is not None
    for bad, count in ((float("nan"), 1), (float("inf"), 1), (-float("inf"), 1)):
        y = torch.zeros(2, 3)
        y[1, 2] = bad
        with pytest.raises(ValueError, match=f"y must be finite, got {count} NaN"):
            check_finite("y", y)
    both = torch.tensor([float("inf"), -float("inf"), 1.0])  # their sum is NaN
    with pytest.raises(ValueError, match="got 2 NaN or infinite"):
        check_finite("both", both)
