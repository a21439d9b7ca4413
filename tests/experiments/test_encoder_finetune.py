"""utils.experiments.encoder_finetune (chapter 8): a probe's features and an encoder
fine-tuned through a head on its pooled vector."""

from types import SimpleNamespace

import pytest
import torch

from utils.bert import Bert, BertConfig
from utils.experiments.encoder_finetune import (
    PooledClassifier,
    classifier_accuracy,
    finetune,
    in_length_order,
    sentence_features,
)
from utils.pooling import mean_pool
from utils.train import TrainConfig

SENTENCES = ["a bb", "c", "dd e ff gg", "h i", "jj kk ll", "m", "nn o p qq rr"]


class _WordTokenizer:
    """Each word is one id (its length + its first letter's rank); pads to the
    longest sentence of a batch, as the chapter's WordPiece tokenizer does."""

    def encode_batch(self, sentences):
        rows = [[len(w) + ord(w[0]) - 96 for w in s.split()] for s in sentences]
        longest = max(map(len, rows))
        return [
            SimpleNamespace(
                ids=r + [0] * (longest - len(r)),
                attention_mask=[1] * len(r) + [0] * (longest - len(r)),
            )
            for r in rows
        ]


def _bert(seed=0):
    torch.manual_seed(seed)
    return Bert(BertConfig(vocab_size=40, block_size=8, num_layers=1, num_heads=2,
                           d_model=16, dim_feedforward=32)).eval()


def _one_at_a_time(fn, sentences):
    tokenizer = _WordTokenizer()
    rows = []
    for sentence in sentences:
        encoded = tokenizer.encode_batch([sentence])[0]
        ids, mask = torch.tensor([encoded.ids]), torch.tensor([encoded.attention_mask])
        with torch.no_grad():
            rows.append(fn(ids, mask))
    return torch.cat(rows)


def test_in_length_order_returns_the_rows_in_the_sentences_order():
    def real_tokens(ids, mask):
        return torch.stack([mask.sum(1), ids[:, 0]], dim=1)  # (B, 2)

    got = in_length_order(real_tokens, _WordTokenizer(), SENTENCES, batch_size=3)
    assert torch.equal(got, _one_at_a_time(real_tokens, SENTENCES))


def test_sentence_features_are_unit_mean_pooled_features_whatever_the_padding():
    bert = _bert()
    features = sentence_features(bert, _WordTokenizer(), SENTENCES)
    expected = _one_at_a_time(lambda i, m: mean_pool(bert(i, m), m), SENTENCES)
    assert features.shape == (len(SENTENCES), 16)
    assert torch.allclose(features.norm(dim=1), torch.ones(len(SENTENCES)))
    assert torch.allclose(features, expected / expected.norm(dim=1, keepdim=True),
                          atol=1e-5)


def test_pooled_classifier_is_a_linear_head_on_the_mean_pooled_features():
    bert = _bert()
    classifier = PooledClassifier(bert, 16, 3)
    ids, mask = torch.tensor([[3, 4, 0], [5, 6, 7]]), torch.tensor([[1, 1, 0], [1, 1, 1]])
    logits = classifier(ids, mask)
    assert logits.shape == (2, 3)
    assert torch.allclose(logits, classifier.head(mean_pool(bert(ids, mask), mask)))


def test_classifier_accuracy_counts_the_right_predictions():
    # predicts class 1 for sentences of one word, class 0 otherwise
    def by_length(ids, mask):
        single = (mask.sum(1) == 1).float()
        return torch.stack([1 - single, single], dim=1)

    class ByLength(torch.nn.Module):
        def forward(self, ids, mask):
            return by_length(ids, mask)

    classifier = ByLength()
    truth = torch.tensor([int(len(s.split()) == 1) for s in SENTENCES])
    assert classifier_accuracy(classifier, _WordTokenizer(), SENTENCES, truth) == 1.0
    flipped = truth.clone()
    flipped[0] = 1 - flipped[0]
    assert classifier_accuracy(
        classifier, _WordTokenizer(), SENTENCES, flipped
    ) == pytest.approx(6 / 7)


def _finetuned(freeze, seed=0):
    classifier = PooledClassifier(_bert(), 16, 2)
    before = {n: p.detach().clone() for n, p in classifier.named_parameters()}
    labels = torch.tensor([int(len(s.split()) > 2) for s in SENTENCES])
    history = finetune(classifier, _WordTokenizer(), SENTENCES, labels,
                       TrainConfig(steps=5, lr=1e-2, log_every=1), batch_size=4,
                       seed=seed, freeze_word_embeddings=freeze)
    return classifier, before, history


def test_finetune_trains_every_layer_and_freezes_only_the_word_table():
    classifier, before, history = _finetuned(freeze=True)
    after = dict(classifier.named_parameters())
    assert history.steps_done == 5
    assert torch.equal(after["encoder.embeddings.word.weight"],
                       before["encoder.embeddings.word.weight"])
    for name in ("head.weight", "encoder.embeddings.position.weight",
                 "encoder.layers.0.feed_forward.linear1.weight"):
        assert not torch.equal(after[name], before[name]), name
    unfrozen, before, _ = _finetuned(freeze=False)
    assert not torch.equal(unfrozen.encoder.embeddings.word.weight,
                           before["encoder.embeddings.word.weight"])


def test_finetune_is_seeded_and_leaves_the_callers_random_state():
    classifier = PooledClassifier(_bert(), 16, 2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    finetune(classifier, _WordTokenizer(), SENTENCES, torch.zeros(7, dtype=torch.long),
             TrainConfig(steps=2), seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    first, _, _ = _finetuned(freeze=True, seed=1)
    again, _, _ = _finetuned(freeze=True, seed=1)
    other, _, _ = _finetuned(freeze=True, seed=2)
    assert torch.equal(first.head.weight, again.head.weight)
    assert not torch.equal(first.head.weight, other.head.weight)


def test_finetune_refuses_sentences_and_labels_of_different_counts():
    with pytest.raises(ValueError, match="7 sentences but 6 labels"):
        finetune(PooledClassifier(_bert(), 16, 2), _WordTokenizer(), SENTENCES,
                 torch.zeros(6, dtype=torch.long), TrainConfig(steps=1))
