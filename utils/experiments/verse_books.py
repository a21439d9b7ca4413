"""Chapter 7's downstream task: which of four books a verse comes from.

The labelled verses come from :func:`utils.data.split_corpus`, which keeps the test
verses out of the pretraining text. A :class:`utils.gpt.GPTClassifier` is fine-tuned on
a few labelled verses, or a linear probe reads its frozen features.
"""

from dataclasses import dataclass

import torch

from utils.checks import check_int
from utils.data import CorpusSplit, endless_batches
from utils.env import seeded
from utils.gpt import GPT, GPTClassifier, GPTConfig
from utils.train import TrainConfig, accuracy, cross_entropy, train


@dataclass
class VerseSet:
    ids: torch.Tensor  # (N, length) character ids, right-padded with 0
    lengths: torch.Tensor  # (N,) real characters per verse
    labels: torch.Tensor  # (N,) the book's index


def verse_set(
    split: CorpusSplit, tokenizer, part: str, n_per_book: int | None = None, length=64
) -> VerseSet:
    """The 'test' verses, or `n_per_book` training verses of each book, cut to their
    first `length` characters."""
    check_int("length", length)
    verses, labels = split.labelled(part, n_per_book)
    ids = torch.zeros(len(verses), length, dtype=torch.long)  # (N, length)
    lengths = torch.zeros(len(verses), dtype=torch.long)  # (N,)
    for i, verse in enumerate(verses):
        encoded = tokenizer.encode(verse[:length])
        ids[i, : len(encoded)], lengths[i] = encoded, len(encoded)
    return VerseSet(ids, lengths, labels)


def verse_accuracy(classifier: GPTClassifier, test: VerseSet) -> float:
    """The share of `test` verses whose book `classifier` names."""
    with torch.no_grad():
        return accuracy(classifier(test.ids, test.lengths), test.labels)


def finetune(
    config: GPTConfig,
    pretrained: dict | None,
    train_set: VerseSet,
    test_set: VerseSet,
    pooling="mean",
    seed=0,
    finetune_config: TrainConfig | None = None,
    batch_size=16,
) -> float:
    """Test accuracy of a classifier whose body starts from the `pretrained` weights
    (a GPT state dict), or from a fresh initialisation when it is None; `seed` sets
    the initialisation of the head (and of the body) and the order of the batches."""
    finetune_config = finetune_config or TrainConfig(steps=40, lr=1e-3)

    def sample(size, generator):
        pick = torch.randint(len(train_set.labels), (size,), generator=generator)
        return train_set.ids[pick], train_set.lengths[pick], train_set.labels[pick]

    def loss(model, batch):
        ids, lengths, labels = batch
        return cross_entropy(model(ids, lengths), labels)

    num_classes = int(train_set.labels.max()) + 1
    with seeded(seed):  # the caller's global random state is left as it was
        body = GPT(config)
        if pretrained is not None:
            body.load_state_dict(pretrained)
        classifier = GPTClassifier(body, num_classes, pooling=pooling)
        train(
            classifier,
            endless_batches(sample, batch_size, seed),
            loss,
            finetune_config,
            progress=False,
        )
    return verse_accuracy(classifier, test_set)


def verse_features(gpt: GPT, verses: VerseSet, pooling="mean") -> torch.Tensor:
    """The frozen GPT's pooled feature of every verse: (N, C)."""
    pool = GPTClassifier(gpt, 2, pooling=pooling).eval()  # its head is not used
    with torch.no_grad():
        return torch.cat(
            [
                pool.features(ids, lengths)
                for ids, lengths in zip(
                    verses.ids.split(256), verses.lengths.split(256)
                )
            ]
        )


def character_counts(verses: VerseSet, vocab_size: int) -> torch.Tensor:
    """Each verse as the share of each character among its real ones: (N, vocab_size),
    a bag of characters (a baseline with no model at all)."""
    check_int("vocab_size", vocab_size)
    real = torch.arange(verses.ids.shape[1]) < verses.lengths[:, None]  # (N, length)
    counts = torch.zeros(len(verses.ids), vocab_size)  # (N, V)
    counts.scatter_add_(1, verses.ids, real.float())
    return counts / verses.lengths[:, None]
