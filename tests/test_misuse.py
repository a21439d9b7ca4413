"""Misuse of the public API: every case raises a ValueError that names the problem.

One row per misuse: (class of misuse, callable, arguments, words the message must have).
A new module is covered by adding its rows. The classes are those of the bad-input
contract: type, shape, dtype, size or range, vocabulary, no silent broadcasting, the mask
convention, and unsupported converter settings.
"""

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from utils import (
    attention,
    beam_search,
    bert,
    char_rnn,
    cnn,
    data,
    env,
    gpt,
    igpt,
    pooling,
    rnn,
    rnn_seq2seq,
    sampling,
    tokenizers,
    train,
    transformer,
    vit,
)
from utils.experiments import (
    bigram,
    bottleneck,
    linear_probe,
    neighbour_heads,
    number_words,
    pixel_gpt,
    signal_recall,
    verse_books,
    vit_digits,
)

x3 = torch.randn(2, 5, 8)
ids = torch.arange(10).reshape(2, 5)  # every id of the 10-token vocabulary, fixed


def _gpt():
    return gpt.GPT(gpt.GPTConfig(vocab_size=10, block_size=8, num_layers=1, num_heads=2,
                                 d_model=8)).eval()


def _mha():
    return attention.MultiHeadAttention(8, 2)


def _seq2seq():
    return transformer.Seq2Seq(transformer.Seq2SeqConfig(src_vocab_size=6, tgt_vocab_size=5,
                                                         d_model=8, num_heads=2,
                                                         dim_feedforward=16))


def _rnn_seq2seq(attention=True):
    return rnn_seq2seq.RNNSeq2Seq(rnn_seq2seq.RNNSeq2SeqConfig(
        len(number_words.SRC_VOCAB), len(number_words.TGT_VOCAB), d_embed=4,
        hidden_size=8, attention=attention))


def _bert():
    return bert.Bert(bert.BertConfig(vocab_size=10, block_size=8, type_vocab_size=2,
                                     num_layers=1, num_heads=2, d_model=8,
                                     dim_feedforward=16)).eval()


def _hf_bert(cls="BertModel", **config):
    import transformers
    config = dict(dict(vocab_size=10, max_position_embeddings=8, hidden_size=8,
                       num_hidden_layers=1, num_attention_heads=2, intermediate_size=16),
                  **config)
    return getattr(transformers, cls)(transformers.BertConfig(**config))


def _mask_tokens(**kwargs):
    return data.mask_tokens(ids, **dict(dict(mask_id=1, vocab_size=10), **kwargs))


def _vit():
    from utils.vit import ViT, ViTConfig
    return ViT(ViTConfig(num_layers=1, num_heads=2, d_model=8, dim_feedforward=16)).eval()


def _pixels():
    return tokenizers.PixelTokenizer(3).fit(torch.rand(2, 4, 4))


def _hf_untied():
    from transformers import GPT2Config, GPT2LMHeadModel
    return GPT2LMHeadModel(GPT2Config(vocab_size=10, n_positions=8, n_embd=8, n_layer=1,
                                      n_head=2, tie_word_embeddings=False))


CASES = [
    # --- type: a float, bool or string where an int or a bool belongs ---
    ("type", lambda: attention.MultiHeadAttention(8.0, 2), "d_model"),
    ("type", lambda: attention.MultiHeadAttention(8, True), "num_heads"),
    ("type", lambda: rnn.RNN(3, 4, batch_first="False"), "batch_first"),
    ("type", lambda: rnn.LSTM(3, 4, 1.0), "num_layers"),
    ("type", lambda: gpt.GPTConfig(num_layers=2.0), "num_layers"),
    ("type", lambda: gpt.GPTConfig(bias="yes"), "bias"),
    ("type", lambda: transformer.EncoderLayer(8, 2, norm_first=1), "norm_first"),
    ("type", lambda: tokenizers.CharTokenizer(["ab", "cd"]), "text"),
    ("type", lambda: data.load_corpus("Genesis"), "books"),
    ("type", lambda: env.set_seed(1.5), "seed"),
    ("type", lambda: env.make_generator("0"), "seed"),
    ("type", lambda: train.train(nn.Linear(1, 1), [1, 2], lambda m, b: None), "iterator"),
    ("type", lambda: sampling.sample_next(torch.zeros(1, 3), None), "generator"),
    ("type", lambda: bert.BertConfig(num_layers=2.0), "num_layers"),
    ("type", lambda: tokenizers.PixelTokenizer(4.0), "n_levels"),
    ("range", lambda: tokenizers.PixelTokenizer(0), "n_levels"),
    ("shape", lambda: _pixels().encode(torch.rand(4, 4)), "images must have shape"),
    ("dtype", lambda: _pixels().encode(torch.ones(1, 4, 4, dtype=torch.long)),
     "floating"),
    ("vocabulary", lambda: _pixels().decode(torch.tensor([[0, 1, 2, 3]]), (2, 2)),
     "n_levels=3"),
    ("shape", lambda: _pixels().decode(torch.tensor([[0, 1, 2]]), (2, 2)),
     "ids must have shape"),
    ("range", lambda: igpt.complete(_gpt(), ids, rows_given=5, width=1, start_id=9),
     "rows_given"),
    ("range", lambda: igpt.complete(_gpt(), torch.randint(0, 4, (1, 8)), rows_given=1,
                                   width=4, start_id=9), "block_size"),
    ("range", lambda: pixel_gpt.pixel_digits(n_test=0), "n_test"),
    ("shape", lambda: igpt.downsample(torch.rand(4, 4)),
     r"images must have shape \(B, H, W\)"),
    ("dtype", lambda: igpt.downsample(torch.ones(1, 4, 4, dtype=torch.long)),
     "images must be a floating"),
    ("range", lambda: igpt.downsample(torch.rand(1, 4, 4), 0), "factor=0"),
    ("range", lambda: igpt.downsample(torch.rand(1, 6, 6), 4), "factor=4"),
    ("shape", lambda: igpt.with_start(ids[0], 9), r"ids must have shape \(B, N\)"),
    ("dtype", lambda: igpt.with_start(ids.float(), 9), "ids must have dtype torch.int64"),
    ("range", lambda: gpt.GPTClassifier(_gpt(), 2, pooling="max"), "pooling"),
    ("range", lambda: verse_books.verse_set(None, None, "test", length=0), "length"),
    ("range", lambda: linear_probe.probe_accuracy(x3[0], ids[0], x3[1], ids[1], 6),
     "n_labels"),
    ("dtype", lambda: pixel_gpt.pixel_batches(ids.float(), 2, 9), "ids"),
    ("type", lambda: cnn.CNNConfig(channels=[8]), "channels"),
    ("type", lambda: cnn.CNNConfig(hidden_size=8.0), "hidden_size"),
    ("range", lambda: cnn.CNNConfig(kernel_size=2), "odd"),
    ("range", lambda: cnn.CNNConfig(image_size=10, channels=(4, 4)), "divisible"),
    ("shape", lambda: cnn.CNN(cnn.CNNConfig())(torch.rand(1, 28, 28)), "images"),
    ("dtype", lambda: cnn.CNN(cnn.CNNConfig())(torch.ones(1, 1, 28, 28,
                                                           dtype=torch.long)),
     "floating"),
    ("type", lambda: cnn.receptive_fields({"kernel_size": 3}), "CNNConfig"),
    ("range", lambda: vit_digits.load_digits_split(n_test=0), "n_test"),
    ("range", lambda: vit_digits.load_digits_split().train_part(0), "n must be"),
    ("shape", lambda: vit_digits.random_shift(torch.rand(28, 28), 1, None), "images"),
    ("range", lambda: vit_digits.random_shift(torch.rand(1, 1, 28, 28), -1, None),
     "max_shift"),
    ("shape", lambda: vit_digits.attention_distance(torch.rand(1, 1, 5, 5), 28, 7),
     "weights"),
    ("range", lambda: vit_digits.draw_patches(None, 0, 5, images=torch.rand(2, 1, 28, 28)),
     "patch_size must divide 28"),
    ("range", lambda: vit_digits.class_attention(_vit(), torch.rand(1, 28, 28), 5),
     "layer"),
    ("range", lambda: vit_digits.class_attention(_vit(), torch.rand(1, 28, 28), 0, 9),
     "head"),
    ("shape", lambda: vit_digits.class_attention(_vit(), torch.rand(28, 28)), "image"),
    ("type", lambda: data.mask_tokens(ids, mask_id=1.0, vocab_size=10), "mask_id"),
    ("type", lambda: _mask_tokens(seed="0"), "seed"),
    # --- shape ---
    ("shape", lambda: _bert()(ids, torch.ones(2, 4, dtype=torch.bool)), "attention_mask"),
    ("shape", lambda: _mask_tokens(can_mask=torch.ones(2, 4, dtype=torch.bool)),
     "can_mask"),
    ("shape", lambda: pooling.mean_pool(x3, torch.ones(2, 4, dtype=torch.bool)),
     "attention_mask"),
    ("shape", lambda: attention.split_heads(torch.zeros(2, 8), 2), "x must have shape"),
    ("shape", lambda: attention.merge_heads(torch.zeros(2, 3, 4)), "x must have shape"),
    ("shape", lambda: _mha()(x3[0], x3[0], x3[0]), "query"),
    ("shape", lambda: _mha()(torch.randn(2, 5, 6), x3, x3), "query"),
    ("shape", lambda: attention.scaled_dot_product_attention(x3, x3[..., :4], x3), "d_k"),
    ("shape", lambda: attention.scaled_dot_product_attention(x3, x3, x3[:, :3]), "k and v"),
    ("shape", lambda: rnn.RNN(3, 4)(torch.randn(2, 5, 2)), "input_size"),
    ("shape", lambda: rnn.LSTM(3, 4)(torch.randn(2, 5, 3), torch.zeros(1, 2, 4)), "pair"),
    ("shape", lambda: rnn.RNNCell(3, 4)(torch.randn(2, 3), torch.zeros(3, 4)), "h must have"),
    ("shape", lambda: _gpt()(ids[0]), "idx"),
    ("shape", lambda: _gpt()(torch.randint(0, 10, (1, 9))), "block_size"),
    ("shape", lambda: train.cross_entropy(torch.randn(2, 5, 10), ids[:, :4]), "targets"),
    ("shape", lambda: sampling.sample_next(torch.randn(3), torch.Generator()), "logits"),
    ("shape", lambda: transformer.Transformer(8, 2, 1, 1, 16)(x3, x3[..., :4]), "tgt"),
    ("shape", lambda: gpt.GPTClassifier(_gpt(), 2)(ids[:, :4] % 10, torch.tensor([5, 1])),
     "lengths"),
    # --- dtype ---
    ("dtype", lambda: _gpt()(ids.float()), "dtype"),
    ("dtype", lambda: _gpt()(ids.int()), "dtype"),
    ("dtype", lambda: _mha()(ids.unsqueeze(-1).expand(2, 5, 8), x3, x3), "floating"),
    ("dtype", lambda: rnn.RNN(3, 4)(torch.randn(2, 5, 3), torch.zeros(1, 2, 4).double()),
     "dtype"),
    ("dtype", lambda: attention.scaled_dot_product_attention(x3, x3.double(), x3.double()),
     "dtype"),
    ("dtype", lambda: data.random_chunks(torch.arange(10.0), 2, 3), "dtype"),
    ("dtype", lambda: bigram.bigram_loss(torch.arange(5.0), torch.arange(5), 5), "dtype"),
    # --- size or range ---
    ("range", lambda: attention.MultiHeadAttention(10, 3), "not divisible"),
    ("range", lambda: attention.MultiHeadAttention(8, 2, dropout=1.0), "dropout"),
    ("range", lambda: attention.causal_mask(0), "T"),
    ("range", lambda: attention.padding_mask([4], 3), "lengths"),
    ("range", lambda: gpt.GPTConfig(d_model=10, num_heads=3), "not divisible"),
    ("range", lambda: _gpt().generate(ids[:, :2] % 10, -1), "max_new_tokens"),
    ("range", lambda: _gpt().generate(ids[:, :2] % 10, 2, temperature=0.0), "temperature"),
    ("range", lambda: _gpt().generate(ids[:, :2] % 10, 2, top_k=0), "top_k"),
    ("range", lambda: train.TrainConfig(steps=0), "steps"),
    ("range", lambda: train.TrainConfig(weight_decay=-1.0), "weight_decay"),
    ("range", lambda: data.load_mnist(0), "n"),
    ("range", lambda: data.random_chunks(torch.arange(5), 2, 5), "block_size"),
    ("range", lambda: data.endless_batches(lambda b, g: b, 0), "batch_size"),
    ("range", lambda: tokenizers.BPETokenizer("abc", vocab_size=100), "vocab_size"),
    ("range", lambda: transformer.sinusoidal_positional_encoding(4, 7), "even"),
    ("range", lambda: number_words.number_to_words(1_000_000), "n"),
    ("range", lambda: number_words.split_numbers(10, num_test=11), "num_test"),
    ("range", lambda: _seq2seq().greedy_decode(torch.ones(1, 2, dtype=torch.long),
                                               max_new_tokens=64), "max_new_tokens"),
    ("range", lambda: signal_recall.RecallConfig(max_lag=0), "max_lag"),
    ("range", lambda: neighbour_heads.NeighbourTaskConfig(block_size=2), "block_size"),
    ("range", lambda: train.count_parameters(nn.Linear(1, 1), "gates"), "kind"),
    # --- vocabulary ---
    ("vocabulary", lambda: _gpt()(ids + 10), "vocab_size"),
    ("vocabulary", lambda: _seq2seq()(torch.full((1, 2), 6), torch.ones(1, 2).long()), "src"),
    ("vocabulary", lambda: char_rnn.CharLM(char_rnn.CharLMConfig(5))(ids), "vocab_size"),
    ("vocabulary", lambda: neighbour_heads.NeighbourModel(
        neighbour_heads.NeighbourTaskConfig())(ids + 10), "vocab_size"),
    ("vocabulary", lambda: tokenizers.CharTokenizer("ab").encode("abc"), "vocabulary"),
    ("vocabulary", lambda: tokenizers.CharTokenizer("ab").decode([2]), "vocab_size"),
    ("vocabulary", lambda: bigram.bigram_loss(torch.arange(5), torch.arange(6), 5),
     "vocab_size"),
    ("vocabulary", lambda: number_words.decode_digits([1]), "not a digit"),
    # --- no silent broadcasting ---
    ("broadcast", lambda: _mha()(x3[:1], x3, x3), "batch size"),
    ("broadcast", lambda: transformer.DecoderLayer(8, 2, 16)(x3[:1], x3), "batch size"),
    ("broadcast", lambda: transformer.Transformer(8, 2, 1, 1, 16)(x3, x3[:1]), "batch size"),
    ("broadcast", lambda: attention.scaled_dot_product_attention(x3[:1], x3, x3),
     "batch dimensions"),
    ("broadcast", lambda: _bert()(ids, token_type_ids=ids[:1] % 2), "token_type_ids"),
    ("broadcast", lambda: _bert()(ids, torch.ones(1, 5, dtype=torch.bool)),
     "attention_mask"),
    ("range", lambda: bert.BertConfig(d_model=10, num_heads=3), "not divisible"),
    ("range", lambda: _bert()(torch.zeros(1, 9, dtype=torch.long)), "block_size"),
    ("range", lambda: _mask_tokens(p=0.0), "p must"),
    ("range", lambda: _mask_tokens(p=1.0), "p must"),
    ("range", lambda: _mask_tokens(mask_share=0.8, random_share=0.3), "at most 1"),
    ("range", lambda: _mask_tokens(mask_id=10), "mask_id"),
    ("vocabulary", lambda: _bert()(ids + 5), "vocab_size"),
    ("vocabulary", lambda: _bert()(ids, token_type_ids=ids), "type_vocab_size"),
    ("vocabulary", lambda: _mask_tokens(vocab_size=5), "vocab_size"),
    ("dtype", lambda: _bert()(ids.float()), "input_ids"),
    ("dtype", lambda: _mask_tokens(can_mask=torch.ones(2, 5)), "can_mask"),
    ("mask", lambda: _bert()(ids, torch.zeros(2, 5)), "True/1 = a real token"),
    ("mask", lambda: _bert()(ids, torch.full((2, 5), 2)), "ints 0/1"),
    # --- chapter 3: the RNN encoder-decoder, beam search ---
    ("vocabulary", lambda: _rnn_seq2seq()(torch.full((1, 2), 40), torch.ones(1, 2).long()),
     "src"),
    ("broadcast", lambda: _rnn_seq2seq()(torch.ones(2, 3).long(), torch.ones(1, 2).long()),
     "batch size"),
    ("type", lambda: rnn_seq2seq.RNNSeq2SeqConfig(5, 5, attention="no"), "attention"),
    ("range", lambda: beam_search.beam_search(
        None, (torch.zeros(1),), bos_id=1, eos_id=2, beam_size=0, max_len=3), "beam_size"),
    ("shape", lambda: beam_search.beam_search(
        None, (torch.zeros(2),), bos_id=1, eos_id=2, beam_size=2, max_len=3),
     "one sequence"),
    ("range", lambda: bottleneck.length_groups([1, 2], min_count=0), "min_count"),
    ("range", lambda: number_words.exact_match(_seq2seq(), [1], beam_size=2),
     "no beam search"),
    ("type", lambda: bottleneck.alignment(_rnn_seq2seq(attention=False), 7), "attention"),
    # --- the mask convention: boolean, True = may attend ---
    ("mask", lambda: attention.scaled_dot_product_attention(x3, x3, x3, torch.zeros(5, 5)),
     "True = may attend"),
    ("mask", lambda: _mha()(x3, x3, x3, torch.zeros(5, 5)), "True = may attend"),
    ("mask", lambda: attention.attend(x3, x3, x3, torch.zeros(5, 5), causal=True),
     "True = may attend"),
    ("mask", lambda: attention.scaled_dot_product_attention(
        x3, x3, x3, torch.ones(4, 4, dtype=torch.bool)), "cannot broadcast"),
    ("mask", lambda: transformer.Transformer(8, 2, 1, 1, 16)(
        x3, x3, tgt_mask=torch.zeros(5, 5)), "True = may attend"),
    ("mask", lambda: transformer.Transformer(8, 2, 1, 1, 16)(
        x3, x3, src_key_padding_mask=torch.ones(2, 4, dtype=torch.bool)), "shape"),
    # --- converters: what the reference allows but ours does not model ---
    ("converter", lambda: gpt.GPT.from_hf(_hf_untied()), "tie"),
    ("converter", lambda: bert.Bert.from_hf(_hf_bert(hidden_act="relu")), "hidden_act"),
    ("converter", lambda: bert.Bert.from_hf(
        _hf_bert(position_embedding_type="relative_key")), "position_embedding_type"),
    ("converter", lambda: bert.Bert.from_hf(
        _hf_bert(attention_probs_dropout_prob=0.0)), "dropout"),
    ("converter", lambda: bert.Bert.from_hf(_hf_bert("BertForMaskedLM")), "BertModel"),
    ("converter", lambda: bert.BertForMaskedLM.from_hf(_hf_bert()), "BertForMaskedLM"),
    ("converter", lambda: bert.BertForMaskedLM.from_hf(
        _hf_bert("BertForMaskedLM", tie_word_embeddings=False)), "tie"),
    ("converter", lambda: gpt.GPT.from_hf(nn.Linear(2, 2)), "GPT2LMHeadModel"),
    ("converter", lambda: rnn.LSTM.from_torch(nn.LSTM(2, 3, bidirectional=True)),
     "bidirectional"),
    ("converter", lambda: rnn.LSTM.from_torch(nn.LSTM(2, 3, proj_size=2)), "proj_size"),
    ("converter", lambda: rnn.RNN.from_torch(nn.RNN(2, 3, bias=False)), "bias"),
    ("converter", lambda: rnn.RNN.from_torch(nn.LSTM(2, 3)), "nn.RNN"),
    ("converter", lambda: attention.MultiHeadAttention.from_torch(
        nn.MultiheadAttention(8, 2)), "batch_first"),
    ("converter", lambda: attention.MultiHeadAttention.from_torch(
        nn.MultiheadAttention(8, 2, kdim=4, batch_first=True)), "kdim"),
    ("converter", lambda: transformer.Transformer.from_torch(
        nn.Transformer(8, 2, 1, 1, 16, batch_first=True, activation="gelu")), "relu"),
    ("converter", lambda: transformer.Transformer.from_torch(
        nn.Transformer(8, 2, 1, 1, 16, batch_first=True, bias=False)), "bias"),
    # --- non-finite: NaN or inf where it would give a silent result ---
    ("non-finite", lambda: tokenizers.PixelTokenizer(2).fit(torch.rand(2, 4, 4)).encode(
        torch.full((1, 4, 4), float("nan"))), "images must be finite"),
    ("non-finite", lambda: tokenizers.PixelTokenizer(2).fit(
        torch.tensor([[[0.0, float("inf")]]])), "images must be finite"),
    ("non-finite", lambda: sampling.next_token_probs(torch.randn(2, 5), float("inf")),
     "temperature must be finite"),
    ("non-finite", lambda: sampling.sample_next(
        torch.tensor([[0.0, float("nan")]]), torch.Generator()), "NaN"),
    ("non-finite", lambda: sampling.sample_next(
        torch.full((1, 3), float("-inf")), torch.Generator()), "every token"),
    # --- empty: nothing to work on ---
    ("empty", lambda: data.load_corpus([]), "at least one book"),
    ("empty", lambda: data.split_corpus(val_share=1.0), "training text empty"),
    ("empty", lambda: data.split_corpus(val_share=0.0), "validation text empty"),
    ("empty", lambda: _rnn_seq2seq()(torch.tensor([[3, 4], [0, 0]]),
                                     torch.ones(2, 2).long()), r"rows \[1\] are all padding"),
    ("empty", lambda: train.cross_entropy(torch.randn(2, 4), torch.full((2,), -100)),
     "every target is ignore_index"),
    # --- flags and ids of the wrong type ---
    ("type", lambda: _mha()(x3, x3, x3, need_weights="True"), "need_weights"),
    ("type", lambda: _rnn_seq2seq()(ids[:, :2] % 6 + 1, ids[:, :2] % 5,
                                    need_weights="False"), "need_weights"),
    ("type", lambda: _rnn_seq2seq().greedy_decode(ids % 6 + 1, eos_id="2"), "eos_id"),
    ("range", lambda: _rnn_seq2seq().greedy_decode(ids % 6 + 1, eos_id=99), "eos_id"),
    ("range", lambda: igpt.with_start(ids, -1), "start_id"),
    ("range", lambda: train.accuracy(torch.randn(2, 4), torch.tensor([0, 4])),
     r"targets must be in \[0, 4\)"),
    ("range", lambda: _gpt()(ids, ids + 1), r"targets must be in \[0, 10\)"),
    ("type", lambda: vit.patchify(torch.rand(1, 1, 4, 4), 0), "patch_size"),
    ("type", lambda: train.train(nn.Linear(2, 1), iter([(torch.ones(3, 2),)] * 2),
                                 lambda m, b: m(b[0])[:, 0], train.TrainConfig(steps=1)),
     "scalar tensor"),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
def _case_ids(cases):
    """Ids named after the kind and what is called ("shape-split_heads-0"), so that
    adding a row renames no other case."""
    seen, ids = {}, []
    for kind, call, _ in cases:
        name = f"{kind}-{'.'.join(call.__code__.co_names[-2:])}"
        ids.append(f"{name}-{seen.get(name, 0)}")
        seen[name] = seen.get(name, 0) + 1
    return ids


@pytest.mark.parametrize("kind, call, words", CASES, ids=_case_ids(CASES))
def test_misuse_raises_a_value_error_that_names_the_problem(kind, call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_every_class_of_misuse_has_cases():
    kinds = {kind for kind, _, _ in CASES}
    assert kinds == {"type", "shape", "dtype", "range", "vocabulary", "broadcast", "mask",
                     "converter", "non-finite", "empty"}


def test_helpers_leave_the_global_random_state_and_the_mode_alone():
    import random

    state = random.getstate()
    data.load_digits()
    assert random.getstate() == state
    model = gpt.GPT(gpt.GPTConfig(vocab_size=10, block_size=8, num_layers=1,
                                  num_heads=2, d_model=8, dropout=0.5)).train()
    prompt = torch.zeros(1, 2, dtype=torch.long)
    sampled = model.generate(prompt, 6, seed=3)
    assert model.training  # its mode is restored
    assert torch.equal(sampled, model.eval().generate(prompt, 6, seed=3))


# --- the same contract over generated inputs ---

WRONG_ID_DTYPES = [torch.int32, torch.int16, torch.uint8, torch.bool, torch.float16,
                   torch.float32, torch.float64]
shapes = st.lists(st.integers(1, 4), min_size=0, max_size=5).map(tuple)


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(WRONG_ID_DTYPES), shape=shapes)
def test_token_models_refuse_ids_of_a_wrong_dtype_or_shape(dtype, shape):
    idx = torch.zeros(shape, dtype=dtype)
    for model in (_gpt(), _bert(), char_rnn.CharLM(char_rnn.CharLMConfig(5))):
        with pytest.raises(ValueError, match="idx|ids"):
            model(idx)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]))
def test_attention_refuses_inputs_that_are_not_b_t_d_model(shape, dtype):
    x = torch.zeros(shape, dtype=dtype)
    if len(shape) == 3 and shape[-1] == 8 and dtype == torch.float32:
        return  # the one valid input
    with pytest.raises(ValueError, match="query|floating"):
        _mha()(x, x, x)
