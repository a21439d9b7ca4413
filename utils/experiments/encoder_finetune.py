"""Chapter 8: a pretrained encoder on chapter 7's four-book task, two ways.

A *linear probe* reads the frozen model's mean-pooled features of each verse.
*Fine-tuning* puts a linear head on the same pooled vector and trains it together with
the encoder's layers, as the BERT paper does for one label per input.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks import check_int
from utils.data import endless_batches
from utils.env import seeded
from utils.experiments.masked_lm import encode_sentences
from utils.pooling import mean_pool
from utils.train import TrainConfig, cross_entropy, train


class PooledClassifier(nn.Module):
    """An encoder (``encoder(ids, mask) -> (B, T, d)``) with a linear head on the mean
    of its real tokens' features: (ids, mask) -> (B, num_classes) logits."""

    def __init__(self, encoder: nn.Module, d_model: int, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(check_int("d_model", d_model), num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(mean_pool(self.encoder(ids, mask), mask))  # (B, classes)


def in_length_order(fn, tokenizer, sentences, batch_size=128) -> torch.Tensor:
    """``fn(ids, mask)`` for every sentence, without gradients, in batches of sentences
    of similar length (less padding to compute); the rows in the sentences' order."""
    check_int("batch_size", batch_size)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    outputs = []
    for start in range(0, len(order), batch_size):
        batch = [sentences[i] for i in order[start : start + batch_size]]
        ids, mask = encode_sentences(tokenizer, batch)
        with torch.no_grad():
            outputs.append(fn(ids, mask))
    return torch.cat(outputs)[torch.argsort(torch.tensor(order))]


def sentence_features(encoder, tokenizer, sentences) -> torch.Tensor:
    """The frozen encoder's mean-pooled, unit-length feature of each sentence (N, d)."""
    encoder.eval()

    def features(ids, mask):
        return F.normalize(mean_pool(encoder(ids, mask), mask), dim=-1)  # (B, d)

    return in_length_order(features, tokenizer, sentences)


def classifier_accuracy(classifier, tokenizer, sentences, labels) -> float:
    """The share of `sentences` whose label `classifier` predicts."""
    classifier.eval()
    logits = in_length_order(classifier, tokenizer, sentences)  # (N, classes)
    return (logits.argmax(-1) == labels).float().mean().item()


def finetune(
    classifier: PooledClassifier,
    tokenizer,
    sentences: list[str],
    labels: torch.Tensor,
    config: TrainConfig,
    batch_size: int = 16,
    seed=0,
    freeze_word_embeddings: bool = True,
):
    """Train `classifier` (its head and the encoder's layers) on the labelled
    sentences, `batch_size` drawn at random per step; returns the loss history.

    With `freeze_word_embeddings` the encoder's (a Bert's) word-embedding table stays
    as it is: most of a small BERT's parameters, and the slowest to update."""
    if len(sentences) != len(labels):
        raise ValueError(f"{len(sentences)} sentences but {len(labels)} labels")
    classifier.encoder.embeddings.word.weight.requires_grad_(not freeze_word_embeddings)

    def sample(size, generator):
        pick = torch.randint(len(sentences), (size,), generator=generator)
        ids, mask = encode_sentences(tokenizer, [sentences[i] for i in pick])
        return ids, mask, labels[pick]

    def loss(model, batch):
        ids, mask, targets = batch
        return cross_entropy(model(ids, mask), targets)

    with seeded(seed):  # the caller's global random state is left as it was
        batches = endless_batches(sample, batch_size, seed)
        return train(classifier, batches, loss, config, progress=False)
