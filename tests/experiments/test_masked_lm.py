"""utils.experiments.masked_lm (chapter 8): batches, the BERT-against-GPT bookkeeping,
the corruption widget's rows, and the real model's loader."""

import itertools
from functools import lru_cache

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments import masked_lm
from utils.tokenizers import CharTokenizer

TEXT = "And God said, Let there be light: and there was light. " * 20


@lru_cache(maxsize=1)
def minilm():
    return masked_lm.load_minilm()


def test_mlm_batches_are_seeded_windows_corrupted_by_mask_tokens():
    ids = torch.arange(5, 500)
    inputs, labels = next(masked_lm.mlm_batches(ids, 64, 12, mask_id=0, vocab_size=500))
    assert inputs.shape == labels.shape == (64, 12)
    chosen = labels != -100
    originals = labels[chosen]
    assert ((labels[:, 1:] - labels[:, :-1])[chosen[:, 1:] & chosen[:, :-1]] == 1).all()
    assert 0.05 < chosen.float().mean() < 0.3
    assert (inputs[~chosen] >= 5).all() and (originals >= 5).all()
    again = next(masked_lm.mlm_batches(ids, 64, 12, mask_id=0, vocab_size=500))
    assert torch.equal(again[0], inputs)
    all_mask = next(masked_lm.mlm_batches(ids, 64, 12, mask_id=0, vocab_size=500,
                                          mask_share=1.0, random_share=0.0))
    assert (all_mask[0][all_mask[1] != -100] == 0).all()
    with pytest.raises(ValueError, match="block_size"):
        masked_lm.mlm_batches(ids, 4, len(ids), mask_id=0, vocab_size=500)


def test_masked_lm_loss_is_the_models_loss():
    class Model:
        def __call__(self, inputs, labels=None):
            return None, (inputs + labels).sum()

    assert masked_lm.masked_lm_loss(Model(), (torch.ones(2), torch.ones(2))) == 4


def test_word_windows_put_a_whole_word_at_the_start_position():
    chars = CharTokenizer(TEXT)
    windows, lengths = masked_lm.word_windows(TEXT, chars, 16, 5, n=20)
    assert windows.shape == (20, 16) and lengths.shape == (20,)
    for window, length in zip(windows, lengths):
        text = chars.decode(window)
        word = text[5 : 5 + length]
        assert word.isalpha() and len(word) >= 3
        assert not text[4].isalpha() and not text[5 + length].isalpha()
        assert 5 + length + 3 <= 16
    with pytest.raises(ValueError, match="fewer than"):
        masked_lm.word_windows("a short text", chars, 16, 5, n=5)
    with pytest.raises(ValueError, match="no room"):
        masked_lm.word_windows(TEXT, chars, 8, 5, n=5)


class Oracle:
    """A 'BERT' or 'GPT' that knows the true windows: the bookkeeping's answer key."""

    def __init__(self, windows, vocab_size, right=True):
        self.windows, self.V, self.right = windows, vocab_size, right

    def _logits(self, truth):  # the wrong oracle ranks the truth last
        return torch.nn.functional.one_hot(truth, self.V).float() * (
            1 if self.right else -1)

    def __call__(self, ids):  # BERT: the original at every position; GPT: the next
        if ids.shape[1] == self.windows.shape[1]:
            return (self._logits(self.windows),)
        return (self._logits(self.windows[:, 1 : ids.shape[1] + 1]),)

    def generate(self, prefix, n, top_k=None):
        return self.windows[:, : prefix.shape[1] + n]


def test_compare_on_blanks_counts_right_and_wrong_answers():
    chars = CharTokenizer(TEXT + masked_lm.MASK)
    windows, lengths = masked_lm.word_windows(TEXT, chars, 16, 5, n=30)
    mask_id = chars.index[masked_lm.MASK]
    perfect = Oracle(windows, chars.vocab_size)
    results = masked_lm.compare_on_blanks(perfect, perfect, windows, lengths, 5, mask_id)
    assert list(results) == ["one letter", "whole word, BERT all at once",
                             "whole word, BERT left to right", "next character"]
    assert all(acc == (1.0, 1.0) for acc in results.values())
    wrong = Oracle(windows, chars.vocab_size, right=False)  # never the true character
    results = masked_lm.compare_on_blanks(wrong, perfect, windows, lengths, 5, mask_id)
    assert [bert for bert, _ in results.values()] == [0.0] * 4


def test_mask_free_accuracy_of_a_perfect_and_of_a_copying_model():
    windows = torch.randint(9, (50, 16))  # 9 is the [MASK] id
    perfect = Oracle(windows, 10)
    assert masked_lm.mask_free_accuracy(perfect, windows, 10, mask_id=9) == (1.0, 1.0)

    def copy_input(ids):  # reads each character back, never corrects one
        return (torch.nn.functional.one_hot(ids, 10).float(),)

    fixed, read = masked_lm.mask_free_accuracy(copy_input, windows, 10, mask_id=9,
                                               replace=0.5)
    assert read == 1.0 and 0.02 < fixed < 0.2  # a swap keeps the original 1 time in 9

    def no_mask_read(ids):  # fails the test if it is ever shown the [MASK] id 9
        assert (ids != 9).all()
        return copy_input(ids)

    masked_lm.mask_free_accuracy(no_mask_read, windows, 10, mask_id=9, replace=0.9)
    with pytest.raises(ValueError, match="replace"):
        masked_lm.mask_free_accuracy(perfect, windows, 10, mask_id=9, replace=0.0)


def test_corrupt_sentence_never_chooses_special_tokens_and_labels_each_fate():
    _, tokenizer = minilm()
    sentence = "In the beginning God created the heaven and the earth."
    rows = masked_lm.corrupt_sentence(sentence, tokenizer, 0.9, (0.4, 0.3, 0.3), seed=1)
    assert rows[0][0] == "[CLS]" and rows[-1][0] == "[SEP]"
    assert rows[0][2] is None and rows[-1][2] is None
    for token, shown, fate in rows:
        assert fate in (None, "[MASK]", "random", "unchanged")
        if fate is None or fate == "unchanged":
            assert shown == token
        elif fate == "[MASK]":
            assert shown == "[MASK]"
        else:
            assert shown not in (token, "[MASK]")
    assert {fate for *_, fate in rows} >= {"[MASK]", "random", "unchanged"}
    # the shares are weights: (8, 1, 1) is BERT's 80/10/10, like (0.8, 0.1, 0.1)
    assert masked_lm.corrupt_sentence(sentence, tokenizer, 0.5, (8, 1, 1), 3) == (
        masked_lm.corrupt_sentence(sentence, tokenizer, 0.5, (0.8, 0.1, 0.1), 3))
    with pytest.raises(ValueError, match="all 0"):
        masked_lm.corrupt_sentence(sentence, tokenizer, 0.5, (0, 0, 0), 0)
    with pytest.raises(ValueError, match=r"^random must be in \[0, inf\], got random=-1$"):
        masked_lm.corrupt_sentence(sentence, tokenizer, 0.5, (1, -1, 0), 0)
    seeds = [masked_lm.corrupt_sentence(sentence, tokenizer, 0.5, (8, 1, 1), seed)
             for seed in range(4)]
    assert len({str(rows) for rows in seeds}) > 1  # the seed picks the tokens


def test_corruption_callback_at_every_corner_draws_or_names_the_problem():
    _, tokenizer = minilm()
    corners = {"p": (0.05, 0.95), "mask": (0.0, 1.0), "random": (0.0, 1.0),
               "unchanged": (0.0, 1.0), "seed": (0, 9)}
    before = torch.get_rng_state()
    for values in itertools.product(*corners.values()):
        setting = dict(zip(corners, values))
        fig = plt.figure(figsize=(9, 2.6), layout="constrained")
        try:
            if setting["mask"] == setting["random"] == setting["unchanged"] == 0:
                with pytest.raises(ValueError, match="all 0"):
                    masked_lm.draw_corruption_setting(fig, "Jesus wept.", tokenizer,
                                                      **setting)
            else:
                masked_lm.draw_corruption_setting(fig, "Jesus wept.", tokenizer,
                                                  **setting)
        finally:
            plt.close(fig)
    assert plt.get_fignums() == []
    assert torch.equal(torch.get_rng_state(), before)


def test_attention_callback_at_every_corner():
    model, tokenizer = minilm()
    before = torch.get_rng_state()
    for layer, head in itertools.product((0, 5), (0, 11)):
        fig = plt.figure(figsize=(6.5, 5.2), layout="constrained")
        masked_lm.draw_attention_setting(fig, model, tokenizer, "Jesus wept.",
                                         layer=layer, head=head)
        plt.close(fig)
    with pytest.raises(ValueError, match="layer must be < 6"):
        masked_lm.draw_attention_setting(plt.figure(), model, tokenizer, "x", layer=6)
    plt.close("all")
    assert torch.equal(torch.get_rng_state(), before)


def test_the_diagram_draws():
    fig = plt.figure(figsize=(11, 4.2), layout="constrained")
    masked_lm.draw_masks_and_mlm(fig)
    assert len(fig.axes) == 3
    plt.close(fig)


def test_encode_sentences_pads_to_the_longest_and_marks_the_real_tokens():
    _, tokenizer = minilm()
    ids, mask = masked_lm.encode_sentences(tokenizer, ["Jesus wept.", "And God said, Let"])
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[1].all() and not mask[0].all()
    assert (ids[0][mask[0] == 0] == 0).all()  # [PAD] is id 0
    with pytest.raises(ValueError, match="list of str"):
        masked_lm.encode_sentences(tokenizer, "Jesus wept.")


def test_word_windows_take_every_word_that_fits_and_follow_their_seed():
    import re
    chars = CharTokenizer(TEXT)
    block, start = 16, 5
    longest = block - start - 3
    fitting = sorted(  # by brute force: every word of 3..longest letters whose window fits
        TEXT[m.start() - start : m.start() - start + block]
        for m in re.finditer(r"[A-Za-z]+", TEXT)
        if 3 <= len(m.group()) <= longest and start <= m.start()
        and m.start() - start + block <= len(TEXT)
    )
    before = torch.get_rng_state()
    windows, _ = masked_lm.word_windows(TEXT, chars, block, start, n=len(fitting))
    assert sorted(chars.decode(w) for w in windows) == fitting
    assert torch.equal(torch.get_rng_state(), before)
    one, _ = masked_lm.word_windows(TEXT, chars, block, start, n=5, seed=1)
    again, _ = masked_lm.word_windows(TEXT, chars, block, start, n=5, seed=1)
    other, _ = masked_lm.word_windows(TEXT, chars, block, start, n=5, seed=2)
    assert torch.equal(one, again) and not torch.equal(one, other)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ids=torch.arange(20.0)), "ids must have dtype torch.int64, got torch.float32"),
    (dict(ids=torch.arange(20)[None]), "ids must have shape (N), got (1, 20)"),
    (dict(block_size=0), "block_size must be a positive int, got block_size=0"),
    (dict(block_size=20), "block_size must be in [1, 19] (shorter than ids), got block_size=20"),
], ids=["float-ids", "2-d-ids", "zero-block", "block-too-long"])
def test_mlm_batches_refusals_name_the_argument_exactly(kwargs, message):
    arguments = dict(ids=torch.arange(20), batch_size=2, block_size=4, mask_id=0,
                     vocab_size=20)
    with pytest.raises(ValueError) as error:
        masked_lm.mlm_batches(**{**arguments, **kwargs})
    assert str(error.value) == message
    inputs, _ = next(masked_lm.mlm_batches(**{**arguments, "block_size": 1}))
    assert inputs.shape == (2, 1)  # one token per window is allowed


def test_draw_attention_setting_names_layer_and_head_exactly():
    model, tokenizer = minilm()
    for kwargs, name in ((dict(layer=-1), "layer"), (dict(head=-1), "head")):
        with pytest.raises(ValueError) as error:
            masked_lm.draw_attention_setting(plt.figure(), model, tokenizer, "x", **kwargs)
        assert str(error.value) == f"{name} must be an int >= 0, got {name}=-1"
    plt.close("all")


def test_the_next_token_encoder_is_a_bert_body_with_a_head_and_gpts_loss():
    from utils.bert import BertConfig
    from utils.train import cross_entropy

    torch.manual_seed(0)
    config = BertConfig(vocab_size=7, block_size=6, num_layers=1, num_heads=2,
                        d_model=8, dim_feedforward=16)
    model = masked_lm.NextTokenEncoder(config).eval()
    idx = torch.randint(7, (3, 6))
    targets = torch.roll(idx, -1, dims=1)
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 6, 7)
    torch.testing.assert_close(logits, model.head(model.bert(idx)))
    torch.testing.assert_close(loss, cross_entropy(logits, targets))
    assert masked_lm.next_token_loss(model, (idx, targets)) == loss
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 7  # no causal mask: the first position sees it
    assert not torch.allclose(model(changed, targets)[0][:, 0], logits[:, 0])


def test_our_bert_matches_transformers_on_a_small_random_config():
    before = torch.get_rng_state()
    config = dict(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                  num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=12, type_vocab_size=2)
    assert masked_lm.difference_from_transformers(config) <= 1e-5
    assert torch.equal(torch.get_rng_state(), before)
