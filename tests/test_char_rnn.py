"""utils.char_rnn (chapter 1): a character language model with the from-scratch RNN."""

import pytest
import torch

from utils.char_rnn import CharLM, CharLMConfig, generate, next_char_loss
from utils.data import random_chunks
from utils.rnn import LSTM, RNN
from utils.tokenizers import CharTokenizer

TEXT = "in the beginning\n"


@pytest.fixture
def tokenizer():
    return CharTokenizer(TEXT)


@pytest.mark.parametrize("cell, recurrent", [("rnn", RNN), ("lstm", LSTM)])
def test_model_shapes_and_state(tokenizer, cell, recurrent):
    torch.manual_seed(0)
    model = CharLM(
        CharLMConfig(
            tokenizer.vocab_size, d_embed=4, hidden_size=6, num_layers=2, cell=cell
        )
    )
    assert isinstance(model.recurrent, recurrent) and model.recurrent.num_layers == 2
    x, y = next(random_chunks(tokenizer.encode(TEXT * 3), batch_size=2, block_size=5))
    logits, state = model(x)
    assert logits.shape == (2, 5, tokenizer.vocab_size)
    # carrying the state over two halves gives the same logits as one pass
    first, state1 = model(x[:, :3])
    second, _ = model(x[:, 3:], state1)
    torch.testing.assert_close(
        torch.cat([first, second], dim=1), logits, atol=1e-6, rtol=0
    )
    loss = next_char_loss(model, (x, y))
    assert loss.ndim == 0
    torch.testing.assert_close(
        loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    )


def test_generate_continues_the_prompt_reproducibly(tokenizer):
    torch.manual_seed(0)
    model = CharLM(
        CharLMConfig(tokenizer.vocab_size, d_embed=4, hidden_size=6)
    ).eval()
    text = generate(model, tokenizer, "in", max_new_tokens=7)
    assert text.startswith("in") and len(text) == 9 and set(text) <= set(TEXT)
    assert generate(model, tokenizer, "in", 7) == text  # seed 0 by default
    assert (
        generate(model, tokenizer, "in", 7, seed=torch.Generator().manual_seed(0))
        == text
    )
    assert generate(model, tokenizer, "in", 0) == "in"
    many = {
        generate(model, tokenizer, "in", 20, temperature=3.0, seed=s) for s in range(4)
    }
    assert len(many) > 1  # seeds matter


def test_generate_greedy_is_the_argmax_and_leaves_the_global_state_alone(tokenizer):
    torch.manual_seed(0)
    model = CharLM(
        CharLMConfig(tokenizer.vocab_size, d_embed=4, hidden_size=6, cell="lstm")
    ).eval()
    before = torch.get_rng_state()
    text = generate(model, tokenizer, "th", 5, top_k=1)
    assert torch.equal(torch.get_rng_state(), before)
    ids = tokenizer.encode("th")[None]
    for _ in range(5):  # the whole prefix each time, no carried state
        ids = torch.cat([ids, model(ids)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert text == tokenizer.decode(ids[0])


def test_bad_arguments_are_rejected(tokenizer):
    model = CharLM(CharLMConfig(tokenizer.vocab_size, d_embed=4, hidden_size=6))
    with pytest.raises(ValueError, match="prompt must not be empty"):
        generate(model, tokenizer, "", 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tokenizer, "in", -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tokenizer, "in", 3, temperature=0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        generate(model, tokenizer, "Z", 3)
    with pytest.raises(ValueError, match="ids must be token ids"):
        model(torch.tensor([[tokenizer.vocab_size]]))
    with pytest.raises(ValueError, match="cell must be one of"):
        CharLMConfig(10, cell="gru")
    with pytest.raises(ValueError, match="hidden_size"):
        CharLMConfig(10, hidden_size=0)
