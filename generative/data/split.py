"""Train/validation/test split by recording, never by row.

Rows of one recording share traffic state (the same vehicles, seconds apart), so splitting rows
would leak test traffic into training. Recordings are shuffled with a seeded generator after
sorting by name, so the split depends only on the set of names and the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from generative.data.ngsim import Tracks


@dataclass(frozen=True)
class RecordingSplit:
    """Disjoint recording names per split."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def row_mask(self, tracks: Tracks, which: str) -> NDArray[np.bool_]:
        """Rows of ``tracks`` in split ``which`` (``train``, ``validation`` or ``test``)."""
        names: tuple[str, ...] = getattr(self, which)
        in_split = np.array([r in names for r in tracks.recordings], dtype=np.bool_)
        out: NDArray[np.bool_] = in_split[tracks.recording]
        return out


def split_recordings(
    recordings: Sequence[str],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> RecordingSplit:
    """Split recording names into train/validation/test, deterministically by ``seed``.

    Validation and test get ``round(fraction * n)`` recordings each, at least 1 when there are
    3 or more recordings; train gets the rest.

    Raises:
        ValueError: Duplicate names, or fractions that are negative or do not sum to 1.
    """
    names = sorted(recordings)
    if len(set(names)) != len(names):
        raise ValueError("duplicate recording names")
    if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions}")
    n = len(names)
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = [names[i] for i in perm]
    floor = 1 if n >= 3 else 0
    n_val = max(floor if fractions[1] > 0 else 0, round(fractions[1] * n))
    n_test = max(floor if fractions[2] > 0 else 0, round(fractions[2] * n))
    n_test = min(n_test, n)
    n_val = min(n_val, n - n_test)
    return RecordingSplit(
        train=tuple(sorted(shuffled[n_val + n_test :])),
        validation=tuple(sorted(shuffled[:n_val])),
        test=tuple(sorted(shuffled[n_val : n_val + n_test])),
    )
