"""Design-based accuracy and area: how many reference points to label, where, and what they say about the map.

- `cochran_sample_size`: the points a stratified random sample needs for a target standard error of overall
  accuracy (Cochran 1977, eq. 5.25, as Olofsson et al. 2014 §5.1.1 use it).
- `allocate`: those points shared among strata (proportional, proportional with a minimum, equal), always
  summing to n and never more than a stratum has pixels.
- `estimate`: overall, user's and producer's accuracy, the error matrix in area proportions and the area of each
  class, with standard errors, from a stratified random sample.

One set of estimators serves every design: those of Stehman (2014, IJRS 35:4923) for strata that differ from the
map classes. When the strata are the map classes they are, term by term, those of Olofsson et al. (2014, RSE
148:42); with one stratum, those of simple random sampling. As in Olofsson et al., the finite population
correction (1 − n_h/N_h) is left out: a map has millions of pixels and a sample hundreds, so it changes nothing
that is printed, and without it the published figures come out to the last digit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PatchworkError

Z_95 = 1.96  # the 95% interval's half width in standard errors, as the papers print it
ALLOCATIONS = ("proportional_minimum", "proportional", "equal")


def cochran_sample_size(weights: Sequence[float], expected_users_accuracy: Sequence[float],
                        target_se: float) -> int:
    """Points for a target standard error of overall accuracy: n = (Σ W_i S_i / S(Ô))², S_i = √(U_i (1 − U_i)).

    Args:
        weights: Each map class's share of the map (W_i).
        expected_users_accuracy: The user's accuracy expected of each class (U_i), in the same order.
        target_se: The standard error of overall accuracy aimed at, e.g. 0.01.
    """
    if not 0 < target_se < 1:
        raise PatchworkError(f"TARGET_SE: {target_se:g} is not a standard error of a proportion; give a value "
                             "between 0 and 1, e.g. 0.01.")
    w, u = np.asarray(weights, float), np.asarray(expected_users_accuracy, float)
    spread = float(np.sum(w * np.sqrt(u * (1 - u))))
    if spread == 0:  # every class expected perfect: any sample says so
        return 2 * len(w)
    return math.ceil((spread / target_se) ** 2 - 1e-9)  # (tolerance: 640.0000001 from rounding is 640)


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers in proportion to `shares`, summing to `total` (Hamilton's method; ties go to the first)."""
    if total <= 0 or shares.sum() <= 0:
        return np.zeros(len(shares), np.int64)
    exact = shares / shares.sum() * total
    whole = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - whole), kind="stable")
    whole[order[: total - int(whole.sum())]] += 1
    return whole


@dataclass
class Allocation:
    """Points per stratum, and why, in words per stratum."""
    counts: np.ndarray
    reasons: list[str]


def allocate(n: int, pixels: Sequence[int], method: str = "proportional_minimum", minimum: int = 50) -> Allocation:
    """Share `n` points among strata of `pixels` pixels each.

    proportional_minimum: a stratum whose proportional share is under `minimum` gets `minimum` (or all its pixels),
    and the rest of n is shared proportionally among the others, as Olofsson et al. (2014) advise for rare
    classes; proportional: n_h ∝ N_h; equal: n / H each. The total is n, unless the strata have fewer pixels, or the
    minimums alone add up to more than n (then they win: a stratum with too few points has no usable variance).
    """
    if method not in ALLOCATIONS:
        raise PatchworkError(f"ALLOCATION: '{method}' is not one of {', '.join(ALLOCATIONS)}.")
    sizes = np.asarray(pixels, np.int64)
    n = min(int(n), int(sizes.sum()))
    shares = sizes.astype(float) if method != "equal" else (sizes > 0).astype(float)
    proportional = _largest_remainder(sizes.astype(float), n)
    floor = np.minimum(minimum, sizes) if method == "proportional_minimum" else np.zeros(len(sizes), np.int64)
    counts, fixed = np.zeros(len(sizes), np.int64), np.zeros(len(sizes), bool)  # fixed: at its floor or ceiling
    while not fixed.all():
        free = ~fixed
        counts[free] = _largest_remainder(shares[free], max(n - int(counts[fixed].sum()), 0))
        clipped = free & ((counts > sizes) | (counts < floor))
        if not clipped.any():
            break
        counts[clipped] = np.clip(counts[clipped], floor[clipped], sizes[clipped])
        fixed |= clipped
    reasons = []
    for count, size, share in zip(counts.tolist(), sizes.tolist(), proportional.tolist()):
        if count == size and count < max(share, minimum if method == "proportional_minimum" else 0):
            reasons.append(f"all its {size:,} pixels")
        elif method == "proportional_minimum" and count == minimum and share < count:
            reasons.append(f"the minimum per class ({minimum}); proportional would give {share}")
        elif method == "equal":
            reasons.append("an equal share")
        else:
            reasons.append("proportional to its area")
    return Allocation(counts, reasons)


@dataclass
class Estimate:
    """A ratio estimate and its standard error."""
    value: float
    se: float

    @property
    def ci(self) -> float:
        """The half width of its 95% confidence interval."""
        return Z_95 * self.se


def ratio_estimate(y: np.ndarray, x: np.ndarray, strata: np.ndarray, sizes: dict[int, float]) -> Estimate:
    """Stehman (2014) eq. 27–28: R̂ = Σ_h N_h ȳ_h / Σ_h N_h x̄_h and its standard error.

    V̂(R̂) = 1/X̂² Σ_h N_h² (s²_yh + R̂² s²_xh − 2 R̂ s_xyh)/n_h, with N_h the stratum's size (its area: the
    weights). With x ≡ 1 it is a proportion (eq. 25 divided by N²). NaN where X̂ is 0 (a class never mapped, or
    never in the reference).
    """
    total_y = total_x = 0.0
    for h, size in sizes.items():
        members = strata == h
        total_y += size * y[members].mean()
        total_x += size * x[members].mean()
    if total_x == 0:
        return Estimate(math.nan, math.nan)
    ratio = float(total_y / total_x)
    variance = 0.0
    for h, size in sizes.items():
        members = strata == h
        n_h = int(members.sum())
        yh, xh = y[members], x[members]
        cov = np.cov(np.stack([yh, xh]), ddof=1)  # [[s²_y, s_xy], [s_xy, s²_x]]
        spread = cov[0, 0] + ratio**2 * cov[1, 1] - 2 * ratio * cov[0, 1]
        variance += size**2 * spread / n_h
    return Estimate(ratio, math.sqrt(max(float(variance), 0.0)) / float(total_x))


@dataclass
class Assessment:
    """What a stratified sample says of a map: accuracies, area proportions, error matrices (rows: map classes)."""
    classes: list[int]
    overall: Estimate
    users: list[Estimate]
    producers: list[Estimate]
    area_proportions: list[Estimate]
    proportions: np.ndarray  # the error matrix in area proportions
    counts: np.ndarray  # the error matrix in sample counts


def estimate(strata: np.ndarray, mapped: np.ndarray, reference: np.ndarray, sizes: dict[int, float],
             classes: Sequence[int], stratum_names: dict[int, str] | None = None) -> Assessment:
    """The estimators of Stehman (2014) for a stratified random sample.

    Args:
        strata: Each sample point's stratum.
        mapped: Each point's map class.
        reference: Each point's reference class.
        sizes: Each stratum's size: its area (any unit), or its pixels; these weigh the strata.
        classes: The classes to report, in order (every map and reference class among them).
        stratum_names: What to call the strata in messages (the map classes' names).

    Raises:
        PatchworkError: A stratum with fewer than 2 sample points (no variance can be estimated).
    """
    strata, mapped, reference = (np.asarray(a) for a in (strata, mapped, reference))
    for h in sizes:
        n_h = int((strata == h).sum())
        if n_h < 2:
            raise PatchworkError(
                f"SAMPLES: stratum {(stratum_names or {}).get(h, h)!r} has {n_h} sample point(s) with a reference "
                "class; a stratum needs at least 2 for its variance (its spread cannot be estimated from one "
                "point). Label more points there, or draw the sample again with patchwork:accuracysample.")
    one = np.ones(len(strata))
    correct = (mapped == reference).astype(float)
    users, producers, areas = [], [], []
    for k in classes:
        is_mapped, is_reference = (mapped == k).astype(float), (reference == k).astype(float)
        agree = is_mapped * is_reference
        users.append(ratio_estimate(agree, is_mapped, strata, sizes))
        producers.append(ratio_estimate(agree, is_reference, strata, sizes))
        areas.append(ratio_estimate(is_reference, one, strata, sizes))
    index = {k: i for i, k in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(counts, ([index[v] for v in mapped.tolist()], [index[v] for v in reference.tolist()]), 1)
    total = sum(sizes.values())
    proportions = np.zeros(counts.shape)
    for h, size in sizes.items():
        members = strata == h
        cell = np.zeros(counts.shape)
        np.add.at(cell, ([index[v] for v in mapped[members].tolist()],
                         [index[v] for v in reference[members].tolist()]), 1)
        proportions += size / total * cell / members.sum()
    return Assessment(list(classes), ratio_estimate(correct, one, strata, sizes), users, producers, areas,
                      proportions, counts)
