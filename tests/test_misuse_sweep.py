"""A sweep of careless calls over the public API, one class of misuse at a time.

Each target is a valid call; each mutation breaks one argument the way a learner
might (a float for an int, a string for a flag, NaN in an input, ids out of range, a
tensor of the wrong dtype or shape). Every mutated call must raise a ValueError that
comes from the course's own checks, never return quietly, never fail inside torch, and
never move the global random state. `python tests/test_misuse_sweep.py` prints the
counts per class.
"""

import random
import sys
from collections import Counter

import numpy as np
import torch

from utils import (
    attention,
    bert,
    cnn,
    data,
    gpt,
    igpt,
    rnn,
    rnn_seq2seq,
    sampling,
    tokenizers,
    train,
    transformer,
    vit,
)
from utils.char_rnn import CharLM, CharLMConfig


def _ids(*shape, high=10):
    return torch.randint(high, shape, generator=torch.Generator().manual_seed(0))


def _x(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _gpt():
    config = gpt.GPTConfig(vocab_size=10, block_size=8, num_layers=1, num_heads=2,
                           d_model=8)
    return gpt.GPT(config).eval()


def _bert():
    return bert.Bert(bert.BertConfig(vocab_size=10, block_size=8, num_layers=1,
                                     num_heads=2, d_model=8, dim_feedforward=16))


def _vit():
    return vit.ViT(vit.ViTConfig(image_size=8, patch_size=4, num_layers=1,
                                 num_heads=2, d_model=8, dim_feedforward=16)).eval()


def _seq2seq():
    return rnn_seq2seq.RNNSeq2Seq(rnn_seq2seq.RNNSeq2SeqConfig(10, 6, d_embed=4,
                                                               hidden_size=8))


def _tokenizer():
    return tokenizers.PixelTokenizer(3).fit(torch.rand(2, 4, 4))


# name: (callable factory, valid keyword arguments); the callable is built fresh
TARGETS = {
    "GPT": (_gpt, dict(idx=_ids(2, 5), targets=_ids(2, 5))),
    "GPT.generate": (lambda: _gpt().generate,
                     dict(idx=_ids(1, 3), max_new_tokens=2, temperature=1.0, top_k=3,
                          use_cache=True, seed=0, top_p=0.9)),
    "Bert": (_bert, dict(input_ids=_ids(2, 5),
                         attention_mask=torch.ones(2, 5, dtype=torch.long),
                         token_type_ids=torch.zeros(2, 5, dtype=torch.long))),
    "ViT": (_vit, dict(images=torch.rand(2, 1, 8, 8))),
    "CNN": (lambda: cnn.CNN(cnn.CNNConfig(image_size=8, channels=(2,), hidden_size=4)),
            dict(images=torch.rand(2, 1, 8, 8))),
    "MultiHeadAttention": (lambda: attention.MultiHeadAttention(8, 2),
                           dict(query=_x(2, 5, 8), key=_x(2, 5, 8), value=_x(2, 5, 8),
                                need_weights=False)),
    "attend": (lambda: attention.attend,
               dict(q=_x(2, 5, 4), k=_x(2, 5, 4), v=_x(2, 5, 4), causal=False,
                    dropout_p=0.0, need_weights=False)),
    "RNN": (lambda: rnn.RNN(3, 4), dict(x=_x(2, 5, 3))),
    "LSTM": (lambda: rnn.LSTM(3, 4), dict(x=_x(2, 5, 3))),
    "CharLM": (lambda: CharLM(CharLMConfig(10)), dict(ids=_ids(2, 5))),
    "RNNSeq2Seq": (_seq2seq, dict(src=_ids(2, 4, high=9) + 1, tgt=_ids(2, 3, high=6),
                                  need_weights=False)),
    "RNNSeq2Seq.greedy_decode": (lambda: _seq2seq().greedy_decode,
                                 dict(src=_ids(2, 4, high=9) + 1, max_new_tokens=3)),
    "Seq2Seq": (lambda: transformer.Seq2Seq(transformer.Seq2SeqConfig(
        10, 6, d_model=8, num_heads=2, dim_feedforward=16)),
        dict(src=_ids(2, 4, high=9) + 1, tgt=_ids(2, 3, high=6))),
    "sample_next": (lambda: sampling.sample_next,
                    dict(logits=_x(2, 6), generator=torch.Generator(), temperature=1.0,
                         top_k=2, top_p=0.9)),
    "cross_entropy": (lambda: train.cross_entropy,
                      dict(logits=_x(2, 5, 6), targets=_ids(2, 5, high=6))),
    "accuracy": (lambda: train.accuracy,
                 dict(logits=_x(2, 5, 6), targets=_ids(2, 5, high=6))),
    "mask_tokens": (lambda: data.mask_tokens,
                    dict(input_ids=_ids(2, 6), mask_id=1, vocab_size=10, p=0.5,
                         seed=0)),
    "random_chunks": (lambda: lambda **kw: next(data.random_chunks(**kw)),
                      dict(ids=_ids(50), batch_size=2, block_size=4, seed=0)),
    "patchify": (lambda: vit.patchify, dict(images=torch.rand(2, 1, 8, 8),
                                            patch_size=4)),
    "PixelTokenizer.encode": (lambda: _tokenizer().encode,
                              dict(images=torch.rand(2, 4, 4))),
    "with_start": (lambda: igpt.with_start, dict(ids=_ids(2, 4, high=3), start_id=3)),
    "causal_mask": (lambda: attention.causal_mask, dict(T=4)),
    "padding_mask": (lambda: attention.padding_mask, dict(lengths=[2, 3], T=4)),
}


# accepted on purpose: these take any ids, not ids of a vocabulary
NO_VOCABULARY = {("random_chunks", "ids"), ("with_start", "ids")}


def _non_finite(output) -> bool:
    """NaN or inf in the output: a visible result, as PyTorch's modules give."""
    outputs = output if isinstance(output, tuple) else (output,)
    return any(
        isinstance(o, torch.Tensor) and o.is_floating_point() and
        not torch.isfinite(o).all() for o in outputs
    )


def _mutations(name, value):
    """(class of misuse, mutated value) for one valid argument."""
    if isinstance(value, bool):
        yield "flag", "True"
        yield "flag", 1
    elif isinstance(value, int) and name != "seed":
        yield "type", float(value) + 0.5
        yield "type", str(value)
        yield "range", -1
    elif name == "seed":
        yield "type", "0"
        yield "range", -1
    elif isinstance(value, float):
        yield "non-finite", float("nan")
        yield "range", -1.0
    elif isinstance(value, torch.Tensor) and value.is_floating_point():
        nan = value.clone()
        nan.view(-1)[0] = float("nan")
        yield "non-finite", nan
        yield "dtype", value.long()
        yield "shape", value[None]
    elif isinstance(value, torch.Tensor):  # ids, masks
        yield "dtype", value.float()
        yield "range", value + 1000
        yield "shape", value[None]


def _state():
    return (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())


def _same(a, b):
    return torch.equal(a[0], b[0]) and a[1] == b[1] and (a[2] == b[2]).all()


def _ours(error: BaseException) -> bool:
    """Raised by the course's code (a check in utils/), not deep inside torch."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return isinstance(error, ValueError) and "/utils/" in frames[-1]


def sweep() -> list[tuple]:
    """Every (target, argument, class, outcome) of the sweep."""
    rows = []
    for target, (factory, valid) in TARGETS.items():
        for argument, value in valid.items():
            for kind, bad in _mutations(argument, value):
                call = factory()
                before = _state()
                try:
                    output = call(**{**valid, argument: bad})
                    if kind == "non-finite" and _non_finite(output):
                        outcome = "propagated"  # NaN in, NaN out: not silent
                    elif kind == "range" and (target, argument) in NO_VOCABULARY:
                        outcome = "any ids"
                    else:
                        outcome = "accepted"
                except Exception as error:  # noqa: BLE001 (the outcome is recorded)
                    outcome = "refused" if _ours(error) else (
                        f"deep {type(error).__name__}: {str(error)[:60]}")
                if not _same(before, _state()):
                    outcome = "side effect"  # the global random state moved
                rows.append((target, argument, kind, outcome))
    return rows


ROWS = sweep()


def test_every_careless_call_is_refused_by_our_checks():
    fine = ("refused", "propagated", "any ids")
    bad = [row for row in ROWS if row[3] not in fine]
    assert not bad, "\n".join(f"{t}({a}=...) [{k}]: {o}" for t, a, k, o in bad)


def test_the_sweep_covers_every_class():
    assert {kind for _, _, kind, _ in ROWS} == {
        "flag", "type", "range", "non-finite", "dtype", "shape"}


if __name__ == "__main__":
    counts = Counter((kind, outcome.split(":")[0]) for _, _, kind, outcome in ROWS)
    for (kind, outcome), n in sorted(counts.items()):
        print(f"{kind:<12} {outcome:<28} {n}")
    for row in ROWS:
        if row[3] not in ("refused", "propagated", "any ids"):
            print(*row, sep="  |  ")
    sys.exit(0)
