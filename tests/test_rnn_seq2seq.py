"""Chapter 3: the RNN encoder-decoder equals one built from nn.LSTM and nn.LSTMCell."""

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from utils.rnn_seq2seq import RNNSeq2Seq, RNNSeq2SeqConfig

TOL = dict(rtol=1e-5, atol=1e-5)
PAD = 0


def _model(attention, seed=0):
    torch.manual_seed(seed)
    config = RNNSeq2SeqConfig(11, 9, d_embed=6, hidden_size=8, attention=attention,
                              d_attention=5)
    return RNNSeq2Seq(config).eval()


def _batch(seed=1):
    """Sources of lengths 5, 2 and 4, padded on the right; targets of length 4."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 11, (3, 5), generator=g)
    src[1, 2:] = PAD
    src[2, 4:] = PAD
    tgt = torch.randint(1, 9, (3, 4), generator=g)
    return src, tgt


def _reference(ours, src, tgt):
    """The same model from PyTorch's modules: a packed nn.LSTM reads the padded
    sources, nn.LSTMCell decodes, and the additive score is written out by hand."""
    c = ours.config
    encoder = nn.LSTM(c.d_embed, c.hidden_size, batch_first=True)
    encoder.load_state_dict({f"{k}_l0": v for k, v in ours.encoder.state_dict().items()})
    decoder = nn.LSTMCell(ours.decoder.input_size, c.hidden_size)
    decoder.load_state_dict(ours.decoder.state_dict())
    lengths = (src != PAD).sum(1)
    packed = pack_padded_sequence(ours.src_embedding(src), lengths, batch_first=True,
                                  enforce_sorted=False)
    memory, (h, cell) = encoder(packed)
    memory = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True,
                                              total_length=src.shape[1])[0]
    h, cell = h[0], cell[0]
    logits = []
    for t in range(tgt.shape[1]):
        x = ours.tgt_embedding(tgt[:, t])
        if c.attention:
            s = ours.score
            energy = torch.tanh(s.w_q.weight @ h[:, :, None]
                                + s.w_k.weight @ memory.transpose(1, 2))  # (B, d_a, S)
            scores = (s.w.weight @ energy)[:, 0]  # (B, S)
            scores[src == PAD] = float("-inf")
            context = (scores.softmax(-1)[:, None] @ memory)[:, 0]  # (B, H)
            x = torch.cat([x, context], -1)
        h, cell = decoder(x, (h, cell))
        logits.append(ours.head(torch.cat([h, context], -1) if c.attention else h))
    return torch.stack(logits, 1)


@pytest.mark.parametrize("attention", [False, True])
def test_logits_equal_pytorch_modules_with_the_same_weights(attention):
    ours = _model(attention)
    src, tgt = _batch()
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt), _reference(ours, src, tgt), **TOL)


@pytest.mark.parametrize("attention", [False, True])
def test_a_padded_row_gives_what_the_row_alone_gives(attention):
    ours = _model(attention)
    src, tgt = _batch()
    with torch.no_grad():
        batched = ours(src, tgt)[1]
        alone = ours(src[1:2, :2], tgt[1:2])[0]
    torch.testing.assert_close(batched, alone, **TOL)


def test_attention_weights_are_a_distribution_over_the_real_source_words():
    ours = _model(True)
    src, tgt = _batch()
    with torch.no_grad():
        _, weights = ours(src, tgt, need_weights=True)  # (B, T, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert (weights[src[:, None, :].expand_as(weights) == PAD] == 0).all()
    assert _model(False)(src, tgt, need_weights=True)[1] is None


def _rows(ids):
    return [[t for t in row if t != PAD] for row in ids.tolist()]


@pytest.mark.parametrize("attention", [False, True])
def test_greedy_decoding_feeds_back_the_argmax_and_equals_a_beam_of_one(attention):
    src, _ = _batch()
    for seed in range(20):  # an untrained model whose rows end at different steps
        ours = _model(attention, seed=seed)
        with torch.no_grad():
            ours.head.bias[PAD] -= 10  # a model that never predicts padding
        greedy = ours.greedy_decode(src, max_new_tokens=6)  # (B, L)
        eos = (greedy == ours.config.eos_id).long()
        after_end = eos.cumsum(1) - eos > 0  # (B, L)
        if after_end.any():
            break
    assert _rows(ours.beam_decode(src, beam_size=1, max_new_tokens=6)) == _rows(greedy)
    # each token is the argmax of the logits after the tokens before it, up to the end
    bos = torch.full((3, 1), ours.config.bos_id)
    with torch.no_grad():
        logits = ours(src, torch.cat([bos, greedy[:, :-1]], 1))
    assert (logits.argmax(-1)[~after_end] == greedy[~after_end]).all()
    assert after_end.any() and (greedy[after_end] == PAD).all()


def test_a_wider_beam_never_scores_below_greedy():
    ours = _model(True, seed=4)
    src, _ = _batch()

    def score(row, ids):
        tgt = torch.tensor([[ours.config.bos_id] + ids[:-1]])
        with torch.no_grad():
            log_probs = ours(row, tgt).log_softmax(-1)[0]
        return log_probs[torch.arange(len(ids)), ids].sum().item()

    for i in range(3):
        row = src[i : i + 1]
        greedy = _rows(ours.beam_decode(row, beam_size=1, max_new_tokens=5))[0]
        wide = _rows(ours.beam_decode(row, beam_size=8, max_new_tokens=5))[0]
        assert score(row, wide) >= score(row, greedy) - 1e-5


@pytest.mark.parametrize("call, words", [
    (lambda m: m(torch.full((1, 3), 11), torch.ones(1, 2).long()), "src"),
    (lambda m: m(torch.ones(1, 3).long(), torch.full((1, 2), 9)), "tgt"),
    (lambda m: m(torch.ones(2, 3).long(), torch.ones(1, 2).long()), "batch size"),
    (lambda m: m(torch.ones(1, 3), torch.ones(1, 2).long()), "src"),
    (lambda m: m.greedy_decode(torch.ones(1, 3).long(), max_new_tokens=0),
     "max_new_tokens"),
    (lambda m: m.beam_decode(torch.ones(1, 3).long(), beam_size=0), "beam_size"),
    (lambda m: RNNSeq2SeqConfig(11, 9, attention="yes"), "attention"),
    (lambda m: RNNSeq2SeqConfig(11, 9, eos_id=9), "eos_id"),
    (lambda m: RNNSeq2SeqConfig(11, 2), "tgt_vocab_size"),
])
def test_bad_input_gets_a_clear_error(call, words):
    with pytest.raises(ValueError, match=words):
        call(_model(True))


def test_reverse_source_reads_the_real_tokens_backwards():
    torch.manual_seed(0)
    config = RNNSeq2SeqConfig(11, 9, d_embed=6, hidden_size=8, attention=False,
                              reverse_source=True)
    backwards = RNNSeq2Seq(config).eval()
    forwards = RNNSeq2Seq(RNNSeq2SeqConfig(**{**config.__dict__,
                                              "reverse_source": False})).eval()
    forwards.load_state_dict(backwards.state_dict())
    src, tgt = _batch()
    flipped = torch.stack([torch.cat([row[row != PAD].flip(0), row[row == PAD]])
                           for row in src])  # real tokens reversed, padding after
    with torch.no_grad():
        torch.testing.assert_close(backwards(src, tgt), forwards(flipped, tgt))
        assert not torch.allclose(backwards(src, tgt), forwards(src, tgt))
