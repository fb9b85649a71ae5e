"""Columns drawn a block at a time from lanes equal the columns drawn whole, and the
stream after them is the same: what lets the simulator make a table in blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from simulator import lanes

DRAWS: dict[str, Callable[[np.random.Generator, int], npt.NDArray[Any]]] = {
    "integers": lambda r, k: r.integers(9, 25, k),
    "integers_wide": lambda r, k: r.integers(0, 10**10, k),
    "random": lambda r, k: r.random(k),
    "normal": lambda r, k: r.normal(5600, 0.45, k),
    "choice_weighted": lambda r, k: r.choice(3, size=k, p=[0.85, 0.1, 0.05]),
    "power": lambda r, k: r.power(1.6, k),
}


@pytest.mark.parametrize("name", sorted(DRAWS))
def test_a_lane_in_blocks_gives_the_whole_draw(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "SKIP_ROWS", 61)
    draw = DRAWS[name]
    n = 1_009
    whole = np.random.default_rng([7, 0, 3])
    first, second = draw(whole, n), draw(whole, n)
    after = whole.random(4)

    stream = np.random.default_rng([7, 0, 3])
    one = lanes.lane(stream, draw, n)
    two = lanes.lane(stream, draw, n)
    blocks = [(draw(one, k), draw(two, k)) for k in (1, 500, 0, 508)]
    assert np.array_equal(np.concatenate([b[0] for b in blocks]), first)
    assert np.array_equal(np.concatenate([b[1] for b in blocks]), second)
    assert np.array_equal(stream.random(4), after)


def test_in_blocks_is_the_whole_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "SKIP_ROWS", 61)
    whole = np.random.default_rng(11)
    pieces = np.random.default_rng(11)
    expected = whole.random(1_000) < 0.4
    assert np.array_equal(lanes.in_blocks(pieces, lambda r, k: r.random(k) < 0.4, 1_000), expected)
    assert whole.random() == pieces.random()
