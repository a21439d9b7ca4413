"""utils.gpt (chapter 7): GPT-2 equivalence, the KV cache, sampling, causality, the classifier."""

import math

import pytest
import torch
import transformers

from utils.attention import record_attention
from utils.gpt import GPT, CausalSelfAttention, GPTClassifier, GPTConfig, KVCache

CONFIGS = [
    dict(vocab_size=97, n_positions=32, n_embd=48, n_layer=2, n_head=4),
    dict(vocab_size=300, n_positions=20, n_embd=64, n_layer=3, n_head=2),
    dict(vocab_size=50, n_positions=16, n_embd=24, n_layer=1, n_head=1),
    dict(vocab_size=40, n_positions=8, n_embd=16, n_layer=1, n_head=2, n_inner=24),
    # the exact GELU (GPT-2's is "gelu_new", the tanh approximation)
    dict(vocab_size=30, n_positions=8, n_embd=16, n_layer=2, n_head=2,
         activation_function="gelu"),
]


def hf_gpt2(seed=0, **config):
    torch.manual_seed(seed)
    hf_config = transformers.GPT2Config(
        **config, attn_implementation="eager", bos_token_id=None, eos_token_id=None
    )
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():  # larger random weights than the init: a sharper test
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.3 if "ln" not in name else 1.0)
    return model


def _gpt(seed=0, **config):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**config))


@pytest.mark.parametrize("config", CONFIGS)
def test_logits_equal_hf_gpt2(config):
    hf = hf_gpt2(**config)
    ours = GPT.from_hf(hf).eval()
    assert (ours.config.num_layers, ours.config.num_heads) == (
        config["n_layer"],
        config["n_head"],
    )
    assert ours.config.dim_feedforward == config.get("n_inner", 4 * config["n_embd"])
    tanh = config.get("activation_function", "gelu_new") == "gelu_new"
    assert ours.config.activation == ("gelu_tanh" if tanh else "gelu")
    idx = torch.randint(config["vocab_size"], (3, config["n_positions"]))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, loss = ours(idx)
    assert loss is None
    assert logits.shape == expected.shape
    assert (logits - expected).abs().max().item() <= 1e-4
    # the loss agrees too (HF shifts labels itself)
    with torch.no_grad():
        hf_loss = hf(idx, labels=idx).loss
        _, our_loss = ours(idx[:, :-1], idx[:, 1:])
    assert abs(hf_loss.item() - our_loss.item()) <= 1e-4


def test_from_hf_copies_and_leaves_the_global_random_state_alone():
    hf = hf_gpt2(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    before = torch.get_rng_state()
    ours = GPT.from_hf(hf)
    assert torch.equal(torch.get_rng_state(), before)
    assert ours.lm_head.weight is ours.transformer.wte.weight
    assert torch.equal(
        ours.transformer.h[0].attn.c_attn.weight,
        hf.transformer.h[0].attn.c_attn.weight.t(),
    )
    with torch.no_grad():
        hf.transformer.wte.weight.add_(1.0)  # a copy, not shared storage
    assert not torch.equal(ours.transformer.wte.weight, hf.transformer.wte.weight)
    assert GPT.from_hf(hf.double()).transformer.wte.weight.dtype == torch.float64


def test_from_hf_copies_float64_weights_exactly():
    hf = hf_gpt2(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2).double()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(1e-9 * torch.randn_like(p))  # values a float32 cannot hold
    ours = GPT.from_hf(hf)
    assert torch.equal(ours.transformer.wte.weight, hf.transformer.wte.weight)
    assert torch.equal(
        ours.transformer.h[0].mlp.c_fc.weight, hf.transformer.h[0].mlp.c_fc.weight.t()
    )


def test_lm_head_is_tied_and_hf_conversion_checks_type():
    model = GPT(
        GPTConfig(vocab_size=11, block_size=8, num_layers=1, num_heads=2, d_model=8)
    )
    assert model.lm_head.weight is model.transformer.wte.weight
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        GPT.from_hf(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        GPT.from_hf(
            transformers.GPT2Model(
                transformers.GPT2Config(
                    vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2
                )
            )
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation_function="relu"), "activation_function in"),
        (dict(activation_function="gelu_fast"), "got 'gelu_fast'"),
        (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon"),
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn"),
        (dict(tie_word_embeddings=False), "tie_word_embeddings=True"),
    ],
)
def test_from_hf_rejects_non_standard_gpt2s(kwargs, match):
    config = transformers.GPT2Config(
        vocab_size=20,
        n_positions=8,
        n_embd=8,
        n_layer=1,
        n_head=2,
        bos_token_id=None,
        eos_token_id=None,
        **kwargs,
    )
    with pytest.raises(ValueError, match=match):
        GPT.from_hf(transformers.GPT2LMHeadModel(config))


@pytest.mark.parametrize("prompt_len, new_tokens", [(1, 30), (5, 40), (12, 3)])
def test_greedy_generation_same_with_and_without_cache(prompt_len, new_tokens):
    # block_size 16: the (5, 40) case runs past the block size, where the window slides
    model = GPT.from_hf(
        hf_gpt2(seed=1, vocab_size=23, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    ).eval()
    prompt = torch.randint(
        23, (2, prompt_len), generator=torch.Generator().manual_seed(0)
    )
    cached = model.generate(prompt, new_tokens, top_k=1, use_cache=True)
    uncached = model.generate(prompt, new_tokens, top_k=1, use_cache=False)
    assert cached.shape == (2, prompt_len + new_tokens)
    assert torch.equal(cached[:, :prompt_len], prompt)
    assert torch.equal(cached, uncached)
    # and greedy really is the argmax of the full forward pass
    logits, _ = model(uncached[:, -17:-1])  # the last block_size=16 tokens
    assert torch.equal(logits[:, -1].argmax(-1), uncached[:, -1])


def test_sampling_is_reproducible_and_top_k_restricts():
    model = _gpt(
        vocab_size=30, block_size=32, num_layers=1, num_heads=2, d_model=16
    ).eval()
    prompt = torch.zeros(1, 3, dtype=torch.long)
    a = model.generate(prompt, 20, temperature=1.5, seed=3)
    b = model.generate(prompt, 20, temperature=1.5, use_cache=False, seed=3)
    c = model.generate(
        prompt, 20, temperature=1.5, seed=torch.Generator().manual_seed(3)
    )
    assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(
        model.generate(prompt, 20, temperature=1.5),
        model.generate(prompt, 20, temperature=1.5, seed=0),
    )
    assert (
        len(
            {
                tuple(model.generate(prompt, 20, temperature=1.5, seed=s)[0].tolist())
                for s in range(4)
            }
        )
        > 1
    )
    logits, _ = model(prompt)
    top2 = set(logits[0, -1].topk(2).indices.tolist())
    for seed in range(5):
        out = model.generate(prompt, 1, temperature=5.0, top_k=2, seed=seed)
        assert out[0, -1].item() in top2
    assert torch.equal(model.generate(prompt, 0), prompt)


def test_generate_leaves_the_global_random_state_alone():
    model = _gpt(
        vocab_size=30, block_size=16, num_layers=1, num_heads=2, d_model=16
    ).eval()
    before = torch.get_rng_state()
    model.generate(torch.zeros(1, 2, dtype=torch.long), 5, seed=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_causal_future_tokens_do_not_change_earlier_logits():
    model = _gpt(
        vocab_size=40, block_size=24, num_layers=2, num_heads=4, d_model=32
    ).eval()
    idx = torch.randint(40, (2, 24))
    changed = idx.clone()
    changed[:, 15:] = torch.randint(40, (2, 9))
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.allclose(a[:, :15], b[:, :15], atol=1e-6)
    assert not torch.allclose(
        a[:, 15:], b[:, 15:], atol=1e-3
    )  # the test can fail: later ones do change


# --- the attention layer, its cache and record_attention ---------------------------------------------


def _with_large_weights(model):
    with torch.no_grad():  # sharper attention than the 0.02 init: a stronger test
        for name, p in model.named_parameters():
            if name.endswith("c_attn.weight"):
                p.normal_(0.0, 0.5)
    return model


def test_causal_self_attention_returns_weights_only_when_asked_and_both_paths_agree():
    config = GPTConfig(
        vocab_size=10, block_size=8, num_layers=1, num_heads=2, d_model=16
    )
    torch.manual_seed(0)
    attn = _with_large_weights(CausalSelfAttention(config))
    x = torch.randn(2, 6, 16, requires_grad=True)
    fast, none = attn(x)
    explicit, weights = attn(x, need_weights=True)
    assert (
        none is None and weights.shape == (2, 2, 6, 6) and (weights.triu(1) == 0).all()
    )
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=0)
    g_fast = torch.autograd.grad(fast.pow(2).sum(), [x, *attn.parameters()])
    g_explicit = torch.autograd.grad(explicit.pow(2).sum(), [x, *attn.parameters()])
    for a, b in zip(g_fast, g_explicit, strict=True):  # float32, two kernels' sums
        torch.testing.assert_close(a, b, atol=1e-5 * b.abs().max().item(), rtol=1e-4)


@pytest.mark.parametrize("need_weights", [False, True])
def test_kv_cache_one_token_at_a_time_equals_the_full_pass(need_weights):
    config = GPTConfig(
        vocab_size=10, block_size=8, num_layers=1, num_heads=2, d_model=16
    )
    torch.manual_seed(0)
    attn = _with_large_weights(CausalSelfAttention(config)).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        full, full_weights = attn(x, need_weights=True)
        cache = KVCache()
        first, _ = attn(
            x[:, :2], cache, need_weights=need_weights
        )  # a prompt of two tokens
        steps = [first]
        for t in range(2, 6):
            y, weights = attn(x[:, t : t + 1], cache, need_weights=need_weights)
            steps.append(y)
            if need_weights:
                torch.testing.assert_close(
                    weights[..., 0, :], full_weights[..., t, : t + 1], atol=1e-5, rtol=0
                )
    assert len(cache) == 6 and cache.k.shape == (2, 2, 6, 8)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("train_mode", [False, True])
def test_logits_are_the_same_inside_record_attention(train_mode):
    model = _with_large_weights(
        _gpt(
            vocab_size=20,
            block_size=8,
            num_layers=2,
            num_heads=2,
            d_model=16,
            dropout=0.0,
        )
    ).train(train_mode)
    idx = torch.randint(20, (3, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain, _ = model(idx)
        with record_attention(model) as maps:
            recorded, _ = model(idx)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=0)
    assert list(maps) == ["transformer.h.0.attn", "transformer.h.1.attn"]
    for weights in maps.values():
        assert weights.shape == (3, 2, 8, 8)
        torch.testing.assert_close(
            weights.sum(-1), torch.ones(3, 2, 8), atol=1e-5, rtol=0
        )
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bad_input_raises():
    model = GPT(
        GPTConfig(vocab_size=10, block_size=8, num_layers=1, num_heads=2, d_model=8)
    )
    with pytest.raises(ValueError, match="block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size=10"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="vocab_size=10"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\)"):
        model(torch.tensor([1, 2]))
    prompt = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature=0"):
        model.generate(prompt, 3, temperature=0)
    with pytest.raises(ValueError, match="temperature=-1"):
        model.generate(prompt, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k=0"):
        model.generate(prompt, 3, top_k=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(prompt, -1)
    with pytest.raises(ValueError, match="use_cache must be True or False"):
        model.generate(prompt, 3, use_cache=1)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        model.generate(prompt, 3, seed=-1)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        GPTConfig(d_model=10, num_heads=3)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        GPTConfig(num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.0)
    with pytest.raises(ValueError, match="bias must be True or False"):
        GPTConfig(bias="yes")
    with pytest.raises(
        ValueError, match="num_classes must be an int >= 2, got num_classes=1"
    ):
        GPTClassifier(model, 1)
    with pytest.raises(ValueError, match="gpt must be a GPT"):
        GPTClassifier(torch.nn.Linear(2, 2), 3)


def test_classifier_ignores_right_padding():
    torch.manual_seed(0)
    clf = GPTClassifier(
        GPT(
            GPTConfig(
                vocab_size=12, block_size=10, num_layers=1, num_heads=2, d_model=8
            )
        ),
        3,
    ).eval()
    idx = torch.randint(12, (2, 10))
    lengths = torch.tensor([4, 10])
    padded = idx.clone()
    padded[0, 4:] = 0
    assert torch.allclose(clf(idx, lengths), clf(padded, lengths), atol=1e-6)
    assert clf(idx, lengths).shape == (2, 3)


def test_classifier_pools_the_mean_of_the_real_tokens():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=12, block_size=10, num_layers=1, num_heads=2,
                        d_model=8)).eval()
    clf = GPTClassifier(gpt, 3).eval()
    idx = torch.randint(12, (3, 6))
    lengths = torch.tensor([1, 4, 6])  # a single real token is allowed
    with torch.no_grad():
        h = gpt.features(idx)
        expected = torch.stack([h[b, :n].mean(0) for b, n in enumerate(lengths)])
        torch.testing.assert_close(clf(idx, lengths), clf.head(expected))


def test_classifier_rejects_lengths_outside_the_sequence():
    clf = GPTClassifier(
        GPT(
            GPTConfig(
                vocab_size=12, block_size=10, num_layers=1, num_heads=2, d_model=8
            )
        ),
        3,
    )
    idx = torch.zeros(2, 5, dtype=torch.long)
    for bad in (torch.tensor([0, 3]), torch.tensor([6, 3]), torch.tensor([3]), [3, 3]):
        with pytest.raises(ValueError, match="lengths must be"):
            clf(idx, bad)


def test_dropout_is_active_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=10, num_layers=2, num_heads=2,
                          d_model=16, dropout=0.5))
    idx = torch.randint(12, (2, 8))
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0], atol=0, rtol=0)


def test_cache_fed_several_new_tokens_at_once_equals_the_full_pass():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=16, num_layers=2, num_heads=2,
                          d_model=16)).eval()
    idx = torch.randint(12, (2, 9))
    cache = [KVCache() for _ in model.transformer.h]
    with torch.no_grad():
        parts = [model.features(idx[:, a:b], cache) for a, b in ((0, 3), (3, 7),
                                                                      (7, 8), (8, 9))]
        torch.testing.assert_close(torch.cat(parts, 1), model.features(idx),
                                   atol=1e-5, rtol=1e-5)


def test_initialisation_is_gpt2s_and_bias_false_removes_every_bias():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=100, block_size=64, num_layers=4, num_heads=4,
                       d_model=128)
    model = GPT(config)
    std = {name: p.std().item() for name, p in model.named_parameters()}
    assert abs(std["transformer.wte.weight"] - 0.02) < 0.002
    assert abs(std["transformer.h.0.mlp.c_fc.weight"] - 0.02) < 0.002
    scaled = 0.02 / math.sqrt(2 * 4)  # the residual projections
    assert abs(std["transformer.h.0.mlp.c_proj.weight"] - scaled) < 0.001
    assert abs(std["transformer.h.0.attn.c_proj.weight"] - scaled) < 0.001
    assert abs(model.transformer.h[0].mlp.c_proj.weight.mean().item()) < 0.001
    assert model.lm_head.bias is None
    no_bias = GPT(GPTConfig(vocab_size=100, block_size=64, num_layers=1, num_heads=4,
                            d_model=16, bias=False))
    assert not [n for n, _ in no_bias.named_parameters() if n.endswith("bias")]


@pytest.mark.parametrize("config", CONFIGS[:2])
def test_last_token_pooling_equals_hf_gpt2_for_sequence_classification(config):
    """Weights copied from GPT2ForSequenceClassification, right padding, random ids."""
    hf_lm = hf_gpt2(**config)
    pad = config["vocab_size"] - 1
    hf_config = transformers.GPT2Config(**{**hf_lm.config.to_dict(), "pad_token_id": pad})
    hf_config.num_labels = 3
    hf = transformers.GPT2ForSequenceClassification(hf_config).eval()
    hf.transformer.load_state_dict(hf_lm.transformer.state_dict())
    torch.nn.init.normal_(hf.score.weight)
    ours = GPTClassifier(GPT.from_hf(hf_lm), 3, pooling="last").eval()
    with torch.no_grad():
        ours.head.weight.copy_(hf.score.weight)
        ours.head.bias.zero_()  # GPT-2's score layer has no bias
    T = config["n_positions"]
    lengths = torch.tensor([1, T // 2, T - 1, T])
    idx = torch.randint(pad, (4, T))  # real tokens never equal the pad id
    idx[torch.arange(T) >= lengths[:, None]] = pad
    with torch.no_grad():
        expected = hf(idx).logits
        torch.testing.assert_close(ours(idx, lengths), expected, atol=1e-4, rtol=0)
    # "mean" pools differently: the two settings really are different features
    ours.pooling = "mean"
    with torch.no_grad():
        assert (ours(idx, lengths) - expected).abs().max() > 1e-2


def test_classifier_rejects_an_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of 'mean', 'last'"):
        GPTClassifier(_gpt(vocab_size=12, block_size=8, num_layers=1, num_heads=2,
                           d_model=8), 3, pooling="max")


def test_generate_never_samples_a_suppressed_token():
    model = _gpt(vocab_size=6, block_size=16, num_layers=1, num_heads=2, d_model=8)
    with torch.no_grad():
        model.lm_head.weight[3] += 5.0  # token 3 would be the likeliest
    prompt = torch.zeros(40, 1, dtype=torch.long)
    free = model.generate(prompt, 8, temperature=2.0, seed=1)
    kept_out = model.generate(prompt, 8, temperature=2.0, seed=1, suppress=(3, 5))
    assert (free == 3).any() and not ((kept_out == 3) | (kept_out == 5))[:, 1:].any()
    with pytest.raises(ValueError, match="suppress ids must be token ids, got 6"):
        model.generate(prompt, 1, suppress=(6,))


@pytest.mark.parametrize("activation, approximate", [("gelu", "none"), ("gelu_tanh", "tanh")])
def test_the_mlp_uses_the_configured_gelu(activation, approximate):
    config = GPTConfig(vocab_size=10, block_size=4, d_model=8, activation=activation)
    mlp = GPT(config).transformer.h[0].mlp
    x = torch.randn(2, 4, 8) * 3
    hidden = torch.nn.functional.gelu(mlp.c_fc(x), approximate=approximate)
    torch.testing.assert_close(mlp(x), mlp.c_proj(hidden), rtol=0, atol=0)


def test_the_config_refuses_another_activation():
    with pytest.raises(ValueError, match="activation must be one of 'gelu', 'gelu_tanh'"):
        GPTConfig(activation="relu")
