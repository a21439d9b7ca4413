"""utils.gpt and utils.tokenizers (chapter 6): GPT-2 equivalence, KV cache, causality, BPE."""

import pytest
import torch

from utils.data import load_corpus
from utils.gpt import GPT, GPTClassifier, GPTConfig, bigram_loss
from utils.tokenizers import BPETokenizer, CharTokenizer

transformers = pytest.importorskip("transformers")

CONFIGS = [dict(vocab_size=97, n_positions=32, n_embd=48, n_layer=2, n_head=4),
           dict(vocab_size=300, n_positions=20, n_embd=64, n_layer=3, n_head=2),
           dict(vocab_size=50, n_positions=16, n_embd=24, n_layer=1, n_head=1)]


def hf_gpt2(seed=0, **config):
    torch.manual_seed(seed)
    hf_config = transformers.GPT2Config(**config, attn_implementation="eager",
                                        bos_token_id=None, eos_token_id=None)
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():                    # larger random weights than the init: a sharper test
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.3 if "ln" not in name else 1.0)
    return model


@pytest.mark.parametrize("config", CONFIGS)
def test_logits_equal_hf_gpt2(config):
    hf = hf_gpt2(**config)
    ours = GPT.from_hf_gpt2(hf).eval()
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


def test_lm_head_is_tied_and_hf_conversion_checks_type():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=8))
    assert model.lm_head.weight is model.transformer.wte.weight
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        GPT.from_hf_gpt2(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("prompt_len, new_tokens", [(1, 30), (5, 40), (12, 3)])
def test_greedy_generation_same_with_and_without_cache(prompt_len, new_tokens):
    # block_size 16: the (5, 40) case runs past the block size, where the window slides
    model = GPT.from_hf_gpt2(hf_gpt2(seed=1, vocab_size=23, n_positions=16, n_embd=32, n_layer=2, n_head=4)).eval()
    prompt = torch.randint(23, (2, prompt_len), generator=torch.Generator().manual_seed(0))
    cached = model.generate(prompt, new_tokens, top_k=1, use_cache=True)
    uncached = model.generate(prompt, new_tokens, top_k=1, use_cache=False)
    assert cached.shape == (2, prompt_len + new_tokens)
    assert torch.equal(cached[:, :prompt_len], prompt)
    assert torch.equal(cached, uncached)
    # and greedy really is the argmax of the full forward pass
    logits, _ = model(uncached[:, -17:-1])              # the last block_size=16 tokens
    assert torch.equal(logits[:, -1].argmax(-1), uncached[:, -1])


def test_sampling_is_reproducible_and_top_k_restricts():
    model = GPT(GPTConfig(vocab_size=30, block_size=32, n_layer=1, n_head=2, d_model=16)).eval()
    prompt = torch.zeros(1, 3, dtype=torch.long)
    a = model.generate(prompt, 20, temperature=1.5, generator=torch.Generator().manual_seed(3))
    b = model.generate(prompt, 20, temperature=1.5, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    logits, _ = model(prompt)
    top2 = set(logits[0, -1].topk(2).indices.tolist())
    for seed in range(5):
        out = model.generate(prompt, 1, temperature=5.0, top_k=2, generator=torch.Generator().manual_seed(seed))
        assert out[0, -1].item() in top2


def test_causal_future_tokens_do_not_change_earlier_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, block_size=24, n_layer=2, n_head=4, d_model=32)).eval()
    idx = torch.randint(40, (2, 24))
    changed = idx.clone()
    changed[:, 15:] = torch.randint(40, (2, 9))
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.allclose(a[:, :15], b[:, :15], atol=1e-6)
    assert not torch.allclose(a[:, 15:], b[:, 15:], atol=1e-3)   # the test can fail: later ones do change


def test_bad_input_raises():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, d_model=8))
    with pytest.raises(ValueError, match="block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size=10"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="vocab_size=10"):
        model(torch.tensor([[-1, 2]]))
    prompt = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature=0"):
        model.generate(prompt, 3, temperature=0)
    with pytest.raises(ValueError, match="temperature=-1"):
        model.generate(prompt, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k=0"):
        model.generate(prompt, 3, top_k=0)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_head=3"):
        GPTConfig(d_model=10, n_head=3)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.0)
    with pytest.raises(ValueError, match="num_classes=1"):
        GPTClassifier(model, 1)


def test_classifier_ignores_right_padding():
    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(vocab_size=12, block_size=10, n_layer=1, n_head=2, d_model=8)), 3).eval()
    idx = torch.randint(12, (2, 10))
    lengths = torch.tensor([4, 10])
    padded = idx.clone()
    padded[0, 4:] = 0
    assert torch.allclose(clf(idx, lengths), clf(padded, lengths), atol=1e-6)
    assert clf(idx, lengths).shape == (2, 3)


def test_bigram_loss_matches_counts():
    train = torch.tensor([0, 1, 0, 1, 0, 2])
    val = torch.tensor([0, 1, 0, 2])
    # from the counts: p(1|0) = 2/3, p(0|1) = 1, p(2|0) = 1/3 (no smoothing)
    expected = -(torch.log(torch.tensor(2 / 3)) + torch.log(torch.tensor(1.0)) + torch.log(torch.tensor(1 / 3))) / 3
    assert abs(bigram_loss(train, val, vocab_size=3, smoothing=0.0) - expected.item()) < 1e-6


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_bpe_round_trip_is_exact_on_the_whole_corpus(corpus):
    bpe = BPETokenizer(corpus[:300_000], vocab_size=600)
    assert bpe.vocab_size == 600
    lines = corpus.splitlines(keepends=True)
    ids = torch.cat(bpe.encode_batch(lines))
    assert len(ids) < len(corpus) / 2                 # it compresses (merges were learned)
    assert bpe.decode(ids) == corpus                  # every verse of the corpus, exactly
    odd = "Ünïcode ✓, tabs\tand  spaces \n"           # bytes never seen in training still round-trip
    assert bpe.decode(bpe.encode(odd)) == odd
    with pytest.raises(ValueError, match="vocab_size=100"):
        BPETokenizer(corpus[:1000], vocab_size=100)
    with pytest.raises(ValueError, match="vocab_size=600"):
        bpe.decode([600])


def test_char_tokenizer_round_trip(corpus):
    tok = CharTokenizer(corpus)
    sample = corpus[:5000]
    assert tok.decode(tok.encode(sample)) == sample


def test_classifier_rejects_lengths_outside_the_sequence():
    clf = GPTClassifier(GPT(GPTConfig(vocab_size=12, block_size=10, n_layer=1, n_head=2, d_model=8)), 3)
    idx = torch.zeros(2, 5, dtype=torch.long)
    for bad in (torch.tensor([0, 3]), torch.tensor([6, 3]), torch.tensor([3])):
        with pytest.raises(ValueError, match="lengths must be"):
            clf(idx, bad)


def test_from_hf_gpt2_rejects_a_non_standard_mlp_width():
    from transformers import GPT2Config, GPT2LMHeadModel
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2, n_inner=24))
    with pytest.raises(ValueError, match="n_inner"):
        GPT.from_hf_gpt2(hf)
