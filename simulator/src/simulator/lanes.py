"""Random draws made a block at a time, with the values of one whole draw.

numpy's ``Generator`` gives the same values for ``integers``, ``random``, ``normal`` and
``choice`` with weights drawn in pieces as drawn at once, and the stream after them is the
same too (``tests/simulator/test_lanes.py`` checks it). So a column drawn whole from a
stream can be drawn a block at a time instead: a *lane* is a copy of the stream where the
column's draws begin, and the stream itself skips past them (drawing them a piece at a
time and letting them go) to where the next draws begin. Memory: one block of a column,
not the whole column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

SKIP_ROWS = 1 << 20  # values drawn at a time while skipping a column

Draw = Callable[[np.random.Generator, int], npt.NDArray[Any]]


def copy_of(rng: np.random.Generator) -> np.random.Generator:
    """A generator at the same place of the same stream (the original is not moved)."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def lane(rng: np.random.Generator, draw: Draw, n: int) -> np.random.Generator:
    """A copy of ``rng`` where ``draw(rng, n)`` would begin; ``rng`` moves past those draws.

    ``draw(lane, k)`` then gives the column ``k`` values at a time, the same values.
    """
    start = copy_of(rng)
    skip(rng, draw, n)
    return start


def skip(rng: np.random.Generator, draw: Draw, n: int) -> None:
    """Move ``rng`` past ``draw(rng, n)`` without holding the ``n`` values."""
    for start in range(0, n, SKIP_ROWS):
        draw(rng, min(SKIP_ROWS, n - start))


def in_blocks(rng: np.random.Generator, draw: Draw, n: int) -> npt.NDArray[Any]:
    """``draw(rng, n)`` made ``SKIP_ROWS`` at a time (for a draw reduced right after, so
    only the reduced values of the whole column are held: ``draw`` returns them)."""
    if n <= SKIP_ROWS:
        return draw(rng, n)
    return np.concatenate(
        [draw(rng, min(SKIP_ROWS, n - start)) for start in range(0, n, SKIP_ROWS)]
    )
