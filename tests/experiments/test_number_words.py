"""utils.experiments.number_words (chapter 6): English number words -> digits with a Seq2Seq."""

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments.number_words import (
    BOS,
    EOS,
    PAD,
    SRC_ID,
    SRC_VOCAB,
    TGT_ID,
    TGT_VOCAB,
    batches,
    cross_attention,
    cross_attention_maps,
    decode_digits,
    draw_alignment,
    exact_match,
    make_batch,
    number_to_words,
    seq2seq_loss,
    split_numbers,
    translate,
)
from utils.transformer import Seq2Seq, Seq2SeqConfig

# --- the words -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (45, "forty five"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (1000, "one thousand"),
        (3050, "three thousand fifty"),
        (12_019, "twelve thousand nineteen"),
        (700_001, "seven hundred thousand one"),
        (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words.split()


@pytest.mark.parametrize("n", [-1, 1_000_000, 3.0, "5", True, None])
def test_number_to_words_rejects_other_values(n):
    with pytest.raises(ValueError, match="n must be an int between 0 and 999999"):
        number_to_words(n)


def test_vocabularies_share_the_special_ids():
    assert (PAD, BOS, EOS) == (0, 1, 2)
    for vocab in (SRC_VOCAB, TGT_VOCAB):
        assert vocab[:3] == ["<pad>", "<bos>", "<eos>"] and len(set(vocab)) == len(
            vocab
        )
    assert TGT_VOCAB[3:] == list("0123456789")
    assert all(w in SRC_ID for n in range(0, 1000, 7) for w in number_to_words(n))


# --- batches ----------------------------------------------------------------------------------------


def test_make_batch_shapes_bos_eos_and_padding():
    src, tgt_in, tgt_out = make_batch([5, 3050, 105])
    assert src.shape == (3, 3) and tgt_in.shape == tgt_out.shape == (3, 5)
    assert src.dtype == tgt_in.dtype == tgt_out.dtype == torch.long
    assert src[0].tolist() == [SRC_ID["five"], PAD, PAD]
    assert src[1].tolist() == [SRC_ID["three"], SRC_ID["thousand"], SRC_ID["fifty"]]
    assert (tgt_in[:, 0] == BOS).all()
    assert tgt_in[1].tolist() == [BOS] + [TGT_ID[d] for d in "3050"]
    assert tgt_out[1].tolist() == [TGT_ID[d] for d in "3050"] + [EOS]
    assert tgt_in[0].tolist() == [BOS, TGT_ID["5"], PAD, PAD, PAD]
    assert tgt_out[0].tolist() == [TGT_ID["5"], EOS, PAD, PAD, PAD]
    assert torch.equal(
        tgt_in[:, 1:][tgt_out[:, :-1] != EOS], tgt_out[:, :-1][tgt_out[:, :-1] != EOS]
    )  # shifted
    assert torch.equal(make_batch(torch.tensor([5, 3050, 105]))[0], src)  # a tensor too
    with pytest.raises(ValueError, match="numbers must not be empty"):
        make_batch([])


def test_split_numbers_is_disjoint_complete_and_deterministic():
    train, test = split_numbers(max_number=500, num_test=50, seed=1)
    assert len(test) == 50 and len(train) == 451
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(501))
    again = split_numbers(500, 50, 1)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert not torch.equal(test, split_numbers(500, 50, 2)[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_number=0), "max_number"),
        (dict(max_number=1_000_000), "max_number must be between 1 and 999999"),
        (
            dict(max_number=10, num_test=11),
            "num_test must be between 1 and max_number=10",
        ),
        (dict(max_number=10, num_test=0), "num_test"),
    ],
)
def test_split_numbers_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_numbers(**kwargs)


def test_batches_draw_from_the_given_numbers_reproducibly():
    numbers = torch.tensor([7, 70, 700])
    stream, again = (
        batches(numbers, batch_size=16, seed=3),
        batches(numbers, batch_size=16, seed=3),
    )
    for _ in range(2):
        src, tgt_in, tgt_out = next(stream)
        assert all(
            torch.equal(a, b) for a, b in zip((src, tgt_in, tgt_out), next(again))
        )
        digits = {decode_digits(row) for row in tgt_out}
        assert digits <= {"7", "70", "700"} and src.shape[0] == 16


# --- decoding -------------------------------------------------------------------------------------------


def test_decode_digits_stops_at_eos_or_pad():
    ids = [TGT_ID[d] for d in "305"]
    assert decode_digits(ids + [EOS, TGT_ID["9"]]) == "305"
    assert decode_digits(torch.tensor(ids + [PAD, PAD])) == "305"
    assert decode_digits(ids) == "305" and decode_digits([EOS]) == ""


@pytest.mark.parametrize("bad", [BOS, len(TGT_VOCAB), -1])
def test_decode_digits_rejects_bos_and_ids_outside_the_vocabulary(bad):
    with pytest.raises(ValueError, match=f"id {bad} is not a digit"):
        decode_digits([TGT_ID["1"], bad, EOS])


# --- the model ---------------------------------------------------------------------------------------------


def _model(seed=0, forbid=(BOS, PAD), favour=None):
    """A tiny untrained Seq2Seq; its head bias forbids some ids (or favours one) so outputs are controlled."""
    torch.manual_seed(seed)
    model = Seq2Seq(
        Seq2SeqConfig(
            len(SRC_VOCAB),
            len(TGT_VOCAB),
            d_model=16,
            num_heads=2,
            num_encoder_layers=1,
            num_decoder_layers=2,
            dim_feedforward=32,
            block_size=16,
        )
    ).eval()
    with torch.no_grad():
        for i in forbid:
            model.head.bias[i] = -1e4
        if favour is not None:
            model.head.bias[favour] = 1e4
    return model


def test_seq2seq_loss_ignores_padding():
    model = _model()
    src, tgt_in, tgt_out = make_batch([5, 3050])
    logits = model(src, tgt_in)
    real = tgt_out != PAD
    expected = torch.nn.functional.cross_entropy(logits[real], tgt_out[real])
    torch.testing.assert_close(seq2seq_loss(model, (src, tgt_in, tgt_out)), expected)
    assert not real.all()
    changed = logits.detach().clone()
    changed[~real] = 1e3 * torch.randn_like(
        changed[~real]
    )  # the padded positions' logits do not matter
    torch.testing.assert_close(
        seq2seq_loss(lambda s, t: changed, (src, tgt_in, tgt_out)), expected.detach()
    )


def test_translate_is_the_greedy_decode():
    model = _model()
    numbers = [0, 13, 3050, 999_999]
    words = translate(model, numbers)
    src, _, _ = make_batch(numbers)
    generated = model.greedy_decode(src, max_new_tokens=8, eos_id=EOS)
    assert words == [decode_digits(row) for row in generated]
    assert all(set(w) <= set("0123456789") and len(w) <= 8 for w in words)


def test_translate_of_a_model_that_ends_at_once_is_empty():
    assert translate(_model(favour=EOS), [5, 12]) == ["", ""]


class _Oracle:
    """A 'model' whose greedy decode is right for even numbers and says 0 for odd ones."""

    def __init__(self):
        self.calls = []

    def eval(self):
        return self

    def greedy_decode(self, src, max_new_tokens=None, eos_id=None):
        self.calls.append(len(src))
        rows = []
        for row in src.tolist():
            words = [SRC_VOCAB[i] for i in row if i != PAD]
            n = next(n for n in range(1000) if number_to_words(n) == words)
            digits = str(n) if n % 2 == 0 else "0"
            rows.append([TGT_ID[d] for d in digits] + [EOS])
        return make_batch([0])[2].new_tensor([r + [PAD] * (8 - len(r)) for r in rows])


def test_exact_match_counts_right_translations_in_batches():
    oracle = _Oracle()
    assert exact_match(
        oracle, torch.tensor([2, 4, 5, 8, 9, 11, 12]), batch_size=3
    ) == pytest.approx(4 / 7)
    assert oracle.calls == [3, 3, 1]
    assert exact_match(_model(favour=EOS), [5, 12]) == 0.0
    model = _model()
    assert (
        exact_match(model, [0, 13, 3050])
        == sum(
            p == str(n) for p, n in zip(translate(model, [0, 13, 3050]), [0, 13, 3050])
        )
        / 3
    )


def test_translate_of_an_untrained_model_that_emits_bos_does_not_raise():
    assert exact_match(_model(forbid=(), favour=BOS), [5, 12]) == 0.0


def test_cross_attention_shape_and_rows():
    model = _model()
    src, tgt_in, _ = make_batch([5, 3050, 999_999])
    weights = cross_attention(model, src, tgt_in)
    layers, heads = model.config.num_decoder_layers, model.config.num_heads
    assert weights.shape == (layers, 3, heads, tgt_in.shape[1], src.shape[1])
    padded = (src == PAD)[None, :, None, None, :].expand_as(
        weights
    )  # padded source words
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0
    )
    assert (
        padded.any() and (weights[padded] == 0).all()
    )  # rows sum to 1 over real words
    assert not any(
        m._forward_hooks or m._forward_pre_hooks for m in model.modules()
    )  # no hooks left


def test_cross_attention_maps_of_the_model_output():
    model = _model()
    words, outputs, weights = cross_attention_maps(model, 3050)
    assert words == ["three", "thousand", "fifty"]
    assert outputs[-1] == "<eos>" and all(o in "0123456789" for o in outputs[:-1])
    assert weights.shape == (2, 2, len(outputs), 3)
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0
    )


def test_cross_attention_maps_works_when_the_model_emits_bos():
    model = _model(forbid=(), favour=BOS)
    words, outputs, weights = cross_attention_maps(model, 105)
    assert words == ["one", "hundred", "five"]
    assert outputs == ["<bos>"] * 8 + ["<eos>"]
    assert weights.shape == (2, 2, 9, 3)


def test_draw_alignment_one_panel_per_head_and_the_mean():
    fig = plt.figure()
    axes = draw_alignment(fig, 3050, model=_model())
    assert len(axes) == 3 and axes[0].get_title() == "3050: mean of heads"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == [
        "three",
        "thousand",
        "fifty",
    ]
    plt.close(fig)


def test_a_single_test_number_and_a_bos_in_the_middle_of_an_answer():
    from utils.experiments.number_words import BOS, TGT_VOCAB
    train, test = split_numbers(max_number=10, num_test=1)
    assert len(test) == 1 and len(train) == 10
    three = TGT_VOCAB.index("3")
    assert decode_digits([three, BOS, three], strict=False) == f"3{TGT_VOCAB[BOS]}3"
