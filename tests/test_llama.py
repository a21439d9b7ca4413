"""utils.llama (chapter 11): each part and the whole model against transformers' Llama
on random weights, RoPE's relative-position property, the KV cache, refusals, and the
real SmolLM2-135M-Instruct weights against LlamaForCausalLM from the same file."""

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.llama import modeling_llama as hf_llama

from utils.gpt import KVCache
from utils.llama import (
    GroupedQueryAttention,
    Llama,
    LlamaBlock,
    LlamaConfig,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    apply_rotary,
    kv_cache_bytes,
)

CONFIGS = [  # grouped (3 query heads per key/value head), plain multi-head, untied
    dict(vocab_size=97, hidden_size=48, intermediate_size=128, num_hidden_layers=2,
         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32,
         rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
    dict(vocab_size=60, hidden_size=32, intermediate_size=88, num_hidden_layers=3,
         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=24,
         rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
    dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
         num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=16,
         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=False),
]
IDS = ["grouped", "multi-head", "multi-query-untied"]


def hf_config(attn="eager", **config):
    return transformers.LlamaConfig(
        **config, attn_implementation=attn, bos_token_id=None, eos_token_id=None,
        pad_token_id=None,
    )


def hf_model(seed=0, **config):
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config(**config)).eval()
    with torch.no_grad():  # larger random weights than the init: a sharper test
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name else 0.0, 0.3)
    return model


def ours_config(config) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=config["vocab_size"], block_size=config["max_position_embeddings"],
        num_layers=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
        num_kv_heads=config["num_key_value_heads"], d_model=config["hidden_size"],
        dim_feedforward=config["intermediate_size"], rope_theta=config["rope_theta"],
        norm_eps=config["rms_norm_eps"], tie_embeddings=config["tie_word_embeddings"],
    )


def hf_rotary(config, T):
    rotary = hf_llama.LlamaRotaryEmbedding(hf_config(**config))
    x = torch.zeros(1, T, config["hidden_size"])
    return rotary(x, torch.arange(T)[None])  # cos, sin: (1, T, d_head) each


# --- each part ---


@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_rmsnorm_equals_hf(eps):
    torch.manual_seed(0)
    theirs = hf_llama.LlamaRMSNorm(24, eps=eps)
    with torch.no_grad():
        theirs.weight.normal_(1.0, 0.5)
    ours = RMSNorm(24, eps)
    ours.load_state_dict(theirs.state_dict())
    x = 3.0 * torch.randn(2, 5, 24) + 1.0  # a mean that LayerNorm would remove
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    # the mean is kept: RMSNorm of x + c is not RMSNorm of x
    assert not torch.allclose(ours(x + 1.0), ours(x), atol=1e-2)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_rotary_embedding_equals_hf(config):
    T, d_head = 13, config["hidden_size"] // config["num_attention_heads"]
    cos_hf, sin_hf = hf_rotary(config, T)
    cos, sin = RotaryEmbedding(d_head, config["rope_theta"])(torch.arange(T))
    torch.testing.assert_close(cos, cos_hf[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(sin, sin_hf[0], atol=1e-6, rtol=1e-5)
    q, k = torch.randn(2, 3, T, d_head), torch.randn(2, 3, T, d_head)
    q_hf, k_hf = hf_llama.apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    torch.testing.assert_close(apply_rotary(q, cos, sin), q_hf, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(apply_rotary(k, cos, sin), k_hf, atol=1e-5, rtol=1e-5)


def test_rotary_turns_pair_i_with_i_plus_half_by_position_times_frequency():
    d, theta, position = 8, 100.0, 3
    cos, sin = RotaryEmbedding(d, theta)(torch.tensor([position]))
    x = torch.zeros(1, d)
    x[0, 1] = 1.0  # feature 1 pairs with feature 1 + d/2 = 5
    turned = apply_rotary(x, cos, sin)[0]
    angle = torch.tensor(position * theta ** (-2 / d))
    expected = torch.zeros(d)
    expected[1], expected[5] = angle.cos(), angle.sin()
    torch.testing.assert_close(turned, expected)
    assert torch.equal(RotaryEmbedding(d, theta)(torch.tensor([0]))[0], torch.ones(1, d))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_swiglu_equals_hf_mlp(config):
    torch.manual_seed(0)
    theirs = hf_llama.LlamaMLP(hf_config(**config))
    ours = SwiGLU(config["hidden_size"], config["intermediate_size"])
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 7, config["hidden_size"])
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_grouped_query_attention_equals_hf(config):
    torch.manual_seed(0)
    theirs = hf_llama.LlamaAttention(hf_config("sdpa", **config), layer_idx=0).eval()
    ours = GroupedQueryAttention(ours_config(config))
    ours.load_state_dict(theirs.state_dict())
    T = 11
    x = torch.randn(2, T, config["hidden_size"])
    cos, sin = hf_rotary(config, T)
    expected, _ = theirs(x, (cos, sin), attention_mask=None)  # sdpa: causal
    out, weights = ours(x, cos[0], sin[0])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert weights is None
    out, weights = ours(x, cos[0], sin[0], need_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    H = config["num_attention_heads"]
    assert weights.shape == (2, H, T, T)
    assert torch.all(weights.triu(1) == 0)  # causal: no weight on a later key


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_decoder_layer_equals_hf(config):
    torch.manual_seed(1)
    theirs = hf_llama.LlamaDecoderLayer(hf_config("sdpa", **config), layer_idx=0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0.0, 0.3)
    ours = LlamaBlock(ours_config(config))
    ours.load_state_dict(theirs.state_dict())
    T = 9
    x = torch.randn(3, T, config["hidden_size"])
    cos, sin = hf_rotary(config, T)
    expected = theirs(x, attention_mask=None, position_embeddings=(cos, sin))
    expected = expected[0] if isinstance(expected, tuple) else expected
    torch.testing.assert_close(ours(x, cos[0], sin[0]), expected, atol=1e-5, rtol=1e-5)


# --- the whole model ---


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_logits_equal_hf_llama(config):
    hf = hf_model(**config)
    ours = Llama.from_hf(hf).eval()
    assert ours.config == ours_config(config)
    tied = ours.lm_head.weight is ours.embed_tokens.weight
    assert tied == config["tie_word_embeddings"]
    idx = torch.randint(config["vocab_size"], (3, config["max_position_embeddings"]))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-5, rtol=1e-5)
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_greedy_generation_equals_hf_and_the_cache_changes_nothing(config):
    hf = hf_model(seed=2, **config)
    ours = Llama.from_hf(hf)
    prompt = torch.randint(config["vocab_size"], (1, 4))
    new = config["max_position_embeddings"] - 4  # up to the last position
    cached = ours.generate(prompt, new, top_k=1)
    assert torch.equal(cached, ours.generate(prompt, new, top_k=1, use_cache=False))
    theirs = hf.generate(prompt, max_new_tokens=new, do_sample=False)
    assert torch.equal(cached, theirs)


def test_sampled_generation_is_the_same_with_and_without_the_cache():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=40, block_size=12, num_layers=2, d_model=32))
    prompt = torch.randint(40, (2, 3))
    for sampling in (dict(temperature=1.5), dict(top_p=0.8), dict(top_k=5)):
        a = model.generate(prompt, 20, seed=4, **sampling)  # past block_size: restarts
        b = model.generate(prompt, 20, seed=4, use_cache=False, **sampling)
        assert torch.equal(a, b)
        assert a.shape == (2, 23)


def test_the_cache_keeps_only_the_key_value_heads():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=30, num_heads=6, num_kv_heads=2, d_model=48)
    model = Llama(config).eval()
    cache = [KVCache() for _ in range(config.num_layers)]
    with torch.no_grad():
        model.features(torch.randint(30, (2, 5)), cache)
        model.features(torch.randint(30, (2, 3)), cache)  # three more, after them
    assert cache[0].k.shape == (2, 2, 8, 8)  # (B, H_kv, T_seen, d_head)
    assert kv_cache_bytes(config, 8) * 2 == sum(  # batch of 2
        c.k.numel() * 4 + c.v.numel() * 4 for c in cache
    )


def test_cached_features_equal_the_whole_sequence_at_once():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=30, d_model=32, num_heads=4, num_kv_heads=2))
    idx = torch.randint(30, (2, 10))
    cache = [KVCache() for _ in range(model.config.num_layers)]
    with torch.no_grad():
        whole = model.features(idx)
        parts = [model.features(idx[:, :4], cache), model.features(idx[:, 4:7], cache),
                 model.features(idx[:, 7:], cache)]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)


def test_a_token_does_not_see_later_tokens():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=30, d_model=32)).eval()
    idx = torch.randint(30, (1, 8))
    changed = idx.clone()
    changed[0, 5] = (idx[0, 5] + 1) % 30
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_default_feedforward_width_is_about_eight_thirds_d():
    assert LlamaConfig(d_model=576).dim_feedforward == 1536  # SmolLM2's
    assert LlamaConfig(d_model=128).dim_feedforward == 384  # 341.3, rounded up to 64s


# --- RoPE's defining property ---


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 200),
    n=st.integers(0, 200),
    shift=st.integers(-200, 500),
    seed=st.integers(0, 2**16),
    theta=st.sampled_from([100.0, 10000.0, 100000.0]),
)
def test_a_rotated_score_depends_only_on_the_distance(m, n, shift, seed, theta):
    m, n = m + max(0, -shift), n + max(0, -shift)  # positions stay >= 0 after shifting
    generator = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 16, generator=generator, dtype=torch.float64)
    rotary = RotaryEmbedding(16, theta).double()
    rotary.frequency = rotary.frequency.double()

    def score(i, j):
        cos, sin = rotary(torch.tensor([i, j]))
        cos, sin = cos.double(), sin.double()
        return apply_rotary(q, cos[0], sin[0]) @ apply_rotary(k, cos[1], sin[1])

    assert abs(score(m, n) - score(m + shift, n + shift)) <= 1e-9 * (1 + abs(score(m, n)))
    assert abs(score(m, m) - q @ k) <= 1e-9 * (1 + abs(q @ k))  # same place: no turn


# --- bad input ---


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(num_heads=6, num_kv_heads=4, d_model=48), "num_kv_heads"),
        (dict(num_heads=4, num_kv_heads=4, d_model=20), "even"),
        (dict(d_model=30, num_heads=4), "num_heads"),
        (dict(rope_theta=0.0), "rope_theta"),
        (dict(norm_eps=-1e-5), "norm_eps"),
        (dict(tie_embeddings=1), "tie_embeddings"),
        (dict(num_kv_heads=0), "num_kv_heads"),
    ],
)
def test_bad_configs_are_refused_by_name(kwargs, words):
    with pytest.raises(ValueError, match=words):
        LlamaConfig(**kwargs)


def test_bad_inputs_are_refused_by_name():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=30, block_size=8, d_model=32))
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[1, 30]]))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="block_size"):
        model.generate(torch.zeros(1, 9, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="d_model=32"):
        RMSNorm(32)(torch.randn(2, 16))
    with pytest.raises(ValueError, match="x must have shape"):
        model.layers[0].self_attn(torch.randn(2, 3, 16), None, None)
    with pytest.raises(ValueError, match="positions"):
        model.rotary(torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(rope_parameters={"rope_type": "linear", "factor": 2.0,
                               "rope_theta": 10000.0}), "rope_type"),
        (dict(attention_bias=True), "attention_bias"),
        (dict(mlp_bias=True), "mlp_bias"),
        (dict(hidden_act="gelu"), "hidden_act"),
        (dict(head_dim=16), "head_dim"),
    ],
)
def test_from_hf_refuses_what_ours_does_not_compute(change, words):
    config = {**CONFIGS[0], **change}
    if "rope_parameters" in change:
        config.pop("rope_theta")
    with pytest.raises(ValueError, match=words):
        Llama.from_hf(hf_model(**config))


def test_from_hf_reads_the_settings_of_transformers_4():
    # before version 5, rope_theta and rope_scaling were attributes of their own
    hf = hf_model(**CONFIGS[0])
    hf.config.rope_parameters = None
    hf.config.rope_theta, hf.config.rope_scaling = 1234.0, None
    assert Llama.from_hf(hf).config.rope_theta == 1234.0
    hf.config.rope_scaling = {"type": "dynamic", "factor": 2.0}
    with pytest.raises(ValueError, match="rope_type"):
        Llama.from_hf(hf)


def test_from_hf_refuses_another_model():
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=16,
                                                                n_head=2))
    with pytest.raises(ValueError, match="LlamaForCausalLM"):
        Llama.from_hf(gpt2)


# --- the real weights: SmolLM2-135M-Instruct ---


@pytest.fixture(scope="module")
def smollm2():
    from utils.experiments.llm import load_smollm2

    hf, tokenizer = load_smollm2()
    return hf, Llama.from_hf(hf).eval(), tokenizer


def test_the_weights_file_is_installed_by_the_set_up():
    from utils.experiments.llm import smollm2_path

    path = smollm2_path()
    assert path.stat().st_size > 90e6  # 98 MB of 4-bit blocks
    assert path.read_bytes()[:4] == b"GGUF"


def test_smollm2_has_the_documented_configuration(smollm2):
    hf, ours, _ = smollm2
    assert ours.config == LlamaConfig(
        vocab_size=49152, block_size=8192, num_layers=30, num_heads=9, num_kv_heads=3,
        d_model=576, dim_feedforward=1536, rope_theta=100000.0,
        norm_eps=hf.config.rms_norm_eps, tie_embeddings=True,
    )
    assert abs(ours.config.norm_eps - 1e-5) < 1e-12  # stored as a 32-bit float
    assert sum(p.numel() for p in ours.parameters()) == 134_515_008


def test_smollm2_logits_equal_transformers(smollm2):
    from utils.experiments.llm import chat_ids

    hf, ours, tokenizer = smollm2
    ids = chat_ids(tokenizer, "What is attention in a Transformer?")
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_smollm2_greedy_reply_equals_transformers_token_for_token(smollm2):
    from utils.experiments.llm import agreeing_length, chat_ids, greedy_margins

    hf, ours, tokenizer = smollm2
    ids = chat_ids(tokenizer, "Name a colour of the sky.")
    theirs = hf.generate(ids, max_new_tokens=24, do_sample=False)  # stops at <|im_end|>
    mine = ours.generate(ids, 24, top_k=1)
    # the same tokens up to the end of the turn, or up to a near tie on another CPU
    margins = greedy_margins(ours, mine, ids.shape[1])
    agreed = agreeing_length(mine, theirs, margins, tolerance=1e-3)
    assert agreed > ids.shape[1]
    assert torch.equal(mine, ours.generate(ids, 24, top_k=1, use_cache=False))
