"""Fixed per-threshold weights from how often each threshold has gaps.

Gaps at a low threshold (CHM <= 2 m) are rarer than at a high one (<= 20 m). Without weights,
an average over thresholds lets the frequent, easy high thresholds dominate; weighting by
``(1 / positive fraction) ** power`` (capped, mean 1) keeps the rare ones visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import InputError


def inverse_frequency_weights(
    positive_fraction: Sequence[float],
    power: float = 0.5,
    max_ratio: float = 10.0,
    eps: float = 1e-4,
) -> list[float]:
    """Weights ``∝ (f_k + eps) ** -power``, largest/smallest <= ``max_ratio``, mean 1.

    ``positive_fraction[k]`` is the fraction of valid pixels that are gap at threshold ``k``
    (e.g. from the dataset manifest). ``power`` 0 gives equal weights, 1 full inverse frequency.
    """
    fracs = [float(f) for f in positive_fraction]
    if not fracs or any(not 0.0 <= f <= 1.0 for f in fracs):
        raise InputError(f"Positive fractions must be in [0, 1], got {list(positive_fraction)!r}.")
    if power < 0 or max_ratio < 1:
        raise InputError(f"Need power >= 0 and max_ratio >= 1, got {power}, {max_ratio}.")
    raw = [(f + eps) ** -power for f in fracs]
    floor = max(raw) / max_ratio
    capped = [max(w, floor) for w in raw]
    mean = sum(capped) / len(capped)
    return [w / mean for w in capped]
