"""A tiny dataset in LightGCN's format with planted communities (for training tests).

``users`` users and ``items`` items fall into ``communities`` groups (id mod communities). Each
user interacts with ``train`` items of its own group (train.txt) and ``test`` other items of
its group (test.txt), so a model that finds the groups ranks the test items first, and a
random ranking does not: recall@K of a random ranking is about K / (items - train).
"""

from __future__ import annotations

import os

import numpy as np


def write_planted(folder: str, users: int = 60, items: int = 40, communities: int = 4, train: int = 6,
                  test: int = 2, seed: int = 0) -> dict:
    """Write ``train.txt`` / ``test.txt`` into ``folder``; returns {user: (train items, test items)}."""
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    truth = {}
    with open(os.path.join(folder, "train.txt"), "w") as tr, open(os.path.join(folder, "test.txt"), "w") as te:
        for u in range(users):
            group = [i for i in range(items) if i % communities == u % communities]
            chosen = rng.choice(group, size=train + test, replace=False).tolist()
            truth[u] = (chosen[:train], chosen[train:])
            tr.write(" ".join(map(str, [u, *chosen[:train]])) + "\n")
            te.write(" ".join(map(str, [u, *chosen[train:]])) + "\n")
    return truth
