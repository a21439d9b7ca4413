"""A linear probe: how much a frozen model's features tell about a label.

Used in chapters 7 (which book a verse comes from) and 9 (which digit a picture
shows): a logistic regression on standardised features, fitted on a few labelled
examples and scored on held-out ones.
"""

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from utils.checks import check_int
from utils.env import make_generator


def probe_accuracy(train_x, train_y, test_x, test_y, n_labels: int, seed=0) -> float:
    """Test accuracy of a logistic regression on standardised features, fitted on
    `n_labels` training examples drawn with `seed`."""
    if not 2 <= check_int("n_labels", n_labels) <= len(train_x):
        raise ValueError(f"n_labels must be in [2, {len(train_x)}], got {n_labels}")
    rows = torch.randperm(len(train_x), generator=make_generator(seed))[:n_labels]
    if train_y[rows].unique().numel() < 2:
        raise ValueError(
            f"the {n_labels} labelled examples drawn with seed={seed} are all of one "
            "class; a probe needs two"
        )
    scaler = StandardScaler().fit(train_x[rows].numpy())
    probe = LogisticRegression(C=0.1, tol=1e-3, max_iter=300)
    with threadpool_limits(1):  # a small problem: one BLAS thread is 3x faster
        probe.fit(scaler.transform(train_x[rows].numpy()), train_y[rows].numpy())
        return float(probe.score(scaler.transform(test_x.numpy()), test_y.numpy()))
