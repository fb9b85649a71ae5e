"""The fault planning's compact form gives the rows the whole-table form gave."""

from __future__ import annotations

import numpy as np

from simulator import faults


def test_shuffled_positions_are_the_permutation() -> None:
    for n in (0, 1, 7, 70_001):
        whole, compact = np.random.default_rng(n), np.random.default_rng(n)
        order = np.arange(n, dtype=np.int32)
        compact.shuffle(order)
        assert (order == whole.permutation(n)).all()
        assert compact.random() == whole.random()  # the stream goes on the same


def test_first_clean_is_the_clean_of_the_order() -> None:
    rng = np.random.default_rng(3)
    n = 200_003
    order = rng.permutation(n)
    clean = rng.random(n) < 0.7
    for count in (0, 1, 5, 65_536, 140_000, n):  # within a block, across blocks, more than all
        assert (faults.first_clean(order, clean, count) == order[clean[order]][:count]).all()
