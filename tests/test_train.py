"""utils.train: the training loop, the losses and the parameter counts."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import train
from utils.rnn import LSTM


def _regression_batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[2.0], [-3.0]])
    while True:
        x = torch.randn(32, 2, generator=g)
        yield x, x @ w + 0.5


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


# --- the loop ----------------------------------------------------------------------------------


def test_train_reduces_the_loss_and_records_history():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    history = train.train(
        model,
        _regression_batches(),
        _mse,
        train.TrainConfig(steps=200, lr=0.05, log_every=20, eval_every=50),
        evaluate=lambda m: _mse(m, next(_regression_batches(1))),
    )
    assert history.steps_done == 200
    assert history.step == list(range(20, 201, 20))
    assert history.eval_step == [50, 100, 150, 200]
    assert history.loss[-1] < 0.01 * history.loss[0]
    assert history.eval_loss[-1] < 1e-2
    assert history.seconds > 0
    assert not model.training


def test_a_second_phase_extends_the_history_with_its_steps_counted_on():
    torch.manual_seed(0)
    model, batches = nn.Linear(2, 1), _regression_batches()
    evaluate = lambda m: _mse(m, next(_regression_batches(1))).item()  # noqa: E731
    first = train.train(model, batches, _mse, train.TrainConfig(steps=30, log_every=10,
                        eval_every=15), evaluate=evaluate, progress=False)
    second = train.train(model, batches, _mse, train.TrainConfig(steps=20, lr=3e-4,
                         log_every=10, eval_every=20), evaluate=evaluate, progress=False)
    losses, seconds = first.loss + second.loss, first.seconds + second.seconds
    assert first.extend(second) is first
    assert first.step == [10, 20, 30, 40, 50] and first.loss == losses
    assert first.eval_step == [15, 30, 50] and len(first.eval_loss) == 3
    assert first.steps_done == 50 and first.seconds == pytest.approx(seconds)
    with pytest.raises(ValueError, match="History"):
        first.extend([1, 2])


def test_train_is_deterministic_given_the_seed():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Linear(2, 1)
        losses.append(
            train.train(
                model, _regression_batches(), _mse, train.TrainConfig(steps=30)
            ).loss
        )
    assert losses[0] == losses[1]


def test_evaluate_runs_in_eval_mode_without_gradients():
    seen = []

    def evaluate(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return 0.0

    train.train(
        nn.Linear(2, 1),
        _regression_batches(),
        _mse,
        train.TrainConfig(steps=4, eval_every=2),
        evaluate=evaluate,
    )
    assert seen == [(False, False), (False, False)]


def test_every_training_step_runs_in_train_mode_even_after_an_evaluation():
    modes = []

    def loss(model, batch):  # dropout is on only in train mode
        modes.append(model.training)
        return _mse(model, batch)

    model = nn.Sequential(nn.Dropout(0.1), nn.Linear(2, 1)).eval()
    train.train(
        model,
        _regression_batches(),
        loss,
        train.TrainConfig(steps=6, eval_every=2),
        evaluate=lambda m: 0.0,
    )
    assert modes == [True] * 6 and not model.training  # and eval mode afterwards


def test_train_stops_on_a_non_finite_loss():
    model = nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="step 1"):
        train.train(
            model,
            _regression_batches(),
            lambda m, b: m(b[0]).sum() * float("nan"),
            train.TrainConfig(steps=5),
        )


def test_train_raises_when_the_batches_run_out():
    batches = iter([next(_regression_batches())] * 3)
    with pytest.raises(ValueError, match="batches ran out at step 4 of 10"):
        train.train(nn.Linear(2, 1), batches, _mse, train.TrainConfig(steps=10))


def test_train_stops_at_max_seconds():
    history = train.train(
        nn.Linear(2, 1),
        _regression_batches(),
        _mse,
        train.TrainConfig(steps=10_000, max_seconds=1e-9),
    )
    assert history.steps_done == 1


def test_train_rejects_a_bad_config_or_batches():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="config must be a TrainConfig, got dict"):
        train.train(model, _regression_batches(), _mse, {"steps": 3})
    with pytest.raises(ValueError, match="batches must be an iterator"):
        train.train(
            model, [next(_regression_batches())], _mse
        )  # a list, not an iterator


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 0}, "steps"),
        ({"lr": 0}, "lr"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"max_seconds": 0}, "max_seconds"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"eval_every": 0}, "eval_every"),
        ({"log_every": 1.5}, "log_every"),
        ({"steps": True}, "steps"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        train.TrainConfig(**kwargs)


# --- losses and accuracy ----------------------------------------------------------------------------


def test_cross_entropy_equals_pytorch_for_classes_and_tokens():
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 7), torch.randint(7, (5,))
    torch.testing.assert_close(
        train.cross_entropy(logits, targets), F.cross_entropy(logits, targets)
    )
    logits, targets = torch.randn(2, 4, 7), torch.randint(7, (2, 4))
    torch.testing.assert_close(
        train.cross_entropy(logits, targets),
        F.cross_entropy(logits.reshape(8, 7), targets.reshape(8)),
    )


def test_cross_entropy_leaves_out_ignored_targets():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 4, 7), torch.randint(1, 7, (2, 4))
    padded = targets.clone()
    padded[1, 2:] = 0
    expected = F.cross_entropy(logits[padded != 0], targets[padded != 0])
    torch.testing.assert_close(
        train.cross_entropy(logits, padded, ignore_index=0), expected
    )


def test_cross_entropy_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="targets must be long ids"):
        train.cross_entropy(torch.randn(2, 4, 7), torch.zeros(2, 4))  # float targets
    with pytest.raises(ValueError, match=r"\(2, 4\), got \(2, 5\)"):
        train.cross_entropy(torch.randn(2, 4, 7), torch.zeros(2, 5, dtype=torch.long))


def test_accuracy():
    logits = torch.tensor(
        [[[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]
    )  # predicts 1, 0, 0, 1
    targets = torch.tensor([[1, 0, 1, 0]])
    assert train.accuracy(logits, targets) == 0.5
    assert (
        train.accuracy(logits, torch.tensor([[1, 0, -100, -100]])) == 1.0
    )  # ignored positions
    assert train.accuracy(
        logits[0], torch.tensor([1, 1, 0, 1]), ignore_index=0
    ) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"shaped like logits .*\(1, 4\), got \(1, 3\)"):
        train.accuracy(logits, targets[:, :3])


@pytest.mark.parametrize("score", [train.accuracy, train.cross_entropy])
def test_targets_out_of_range_or_all_ignored_are_refused(score):
    logits = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 4\) .* from 0 to 4"):
        score(logits, torch.tensor([[0, 1, 2], [3, 4, -100]]))
    with pytest.raises(ValueError, match=r"from -1 to 3"):
        score(logits, torch.tensor([[0, 1, 2], [3, -1, 0]]))
    with pytest.raises(ValueError, match="every target is ignore_index=-100"):
        score(logits, torch.full((2, 3), -100))


def test_train_refuses_a_loss_that_is_not_one_number():
    per_example = lambda model, batch: (model(batch[0]) - batch[1]).pow(2)[:, 0]  # noqa: E731
    with pytest.raises(ValueError, match=r"scalar tensor, got \(32,\)"):
        train.train(nn.Linear(2, 1), _regression_batches(), per_example,
                    train.TrainConfig(steps=2))


# --- parameter counts ---------------------------------------------------------------------------------


def test_count_parameters_by_kind():
    layer = nn.Linear(3, 4)
    assert train.count_parameters(layer) == 16
    assert (
        train.count_parameters(layer, "weight") == 12
        and train.count_parameters(layer, "bias") == 4
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        train.count_parameters(layer, "gates")


def test_count_parameters_counts_tied_weights_once():
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    assert train.count_parameters(nn.ModuleList([embedding, head])) == 40


def test_count_parameters_by_kind_inside_a_wrapping_module():
    wrapped = nn.Sequential(LSTM(3, 4))  # names like "0.weight_ih_l0"
    assert train.count_parameters(wrapped, "weight") == 4 * 4 * (3 + 4)
    assert train.count_parameters(wrapped, "bias") == 2 * 4 * 4


def test_train_is_adamw_with_weight_decay_and_clipping_and_logs_the_mean_loss(capsys):
    torch.manual_seed(0)
    batches = [(torch.randn(8, 3), 100 * torch.randn(8, 1)) for _ in range(6)]
    model = nn.Linear(3, 1)
    twin = nn.Linear(3, 1)
    twin.load_state_dict(model.state_dict())
    config = train.TrainConfig(steps=6, lr=0.1, weight_decay=0.5, grad_clip=0.5,
                               log_every=3)
    history = train.train(model, iter(batches), _mse, config)
    optimizer = torch.optim.AdamW(twin.parameters(), lr=0.1, weight_decay=0.5)
    losses = []
    for batch in batches:  # the loop written out by hand
        loss = _mse(twin, batch)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
        optimizer.step()
        losses.append(loss.item())
    torch.testing.assert_close(model.weight, twin.weight)
    torch.testing.assert_close(model.bias, twin.bias)
    assert history.step == [3, 6]
    assert history.loss == pytest.approx([sum(losses[:3]) / 3, sum(losses[3:]) / 3])
    bar = capsys.readouterr().err  # the progress bar: its default name, the last mean
    assert "train: 100%" in bar and f"loss={sum(losses[3:]) / 3:.3f}" in bar
    assert 0 < history.seconds < 60


@pytest.mark.parametrize("name, value, message", [
    ("steps", 0, "steps must be a positive int, got steps=0"),
    ("lr", 0.0, "lr must be in (0, inf], got lr=0.0"),
    ("weight_decay", -1.0, "weight_decay must be in [0, inf], got weight_decay=-1.0"),
    ("grad_clip", 0.0, "grad_clip must be in (0, inf], got grad_clip=0.0"),
    ("max_seconds", -1, "max_seconds must be in (0, inf], got max_seconds=-1"),
    ("eval_every", 0, "eval_every must be a positive int, got eval_every=0"),
    ("log_every", 0, "log_every must be a positive int, got log_every=0"),
])
def test_train_config_messages_name_the_field(name, value, message):
    with pytest.raises(ValueError) as error:
        train.TrainConfig(**{name: value})
    assert str(error.value) == message


def test_a_generous_max_seconds_lets_every_step_run():
    config = train.TrainConfig(steps=5, max_seconds=60.0)
    history = train.train(nn.Linear(2, 1), _regression_batches(), _mse, config)
    assert history.steps_done == 5


def test_count_parameters_by_kind_looks_at_the_last_part_of_a_nested_name():
    nested = nn.Sequential(nn.Sequential(nn.Linear(3, 4)))  # "0.0.weight", "0.0.bias"
    assert train.count_parameters(nested, "weight") == 12
    assert train.count_parameters(nested, "bias") == 4


def test_progress_false_hides_the_bar(capsys):
    train.train(nn.Linear(2, 1), _regression_batches(), _mse,
                train.TrainConfig(steps=2), progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress must be True or False, got progress='no'"):
        train.train(nn.Linear(2, 1), _regression_batches(), _mse, progress="no")


def test_cross_entropy_names_logits_that_are_not_floating_point():
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        train.cross_entropy(
            torch.ones(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long)
        )
