"""Statistics for ``focusnet compare``: bootstrap confidence intervals and paired tests.

Every number here is computed from the per-image metrics that :func:`focusnet.metrics.summarize`
stores under ``summary["per_image"]`` (at each image's original resolution), so each test image is
one observation:

* :func:`bootstrap_ci`: percentile bootstrap confidence interval of a per-image mean;
* :func:`paired_test`: two-sided Wilcoxon signed-rank test of paired per-image differences, with
  the matched-pairs rank-biserial correlation as effect size;
* :func:`detectable_difference`: the smallest mean difference a paired comparison on these images would
  detect (the test set's resolution, which a non-significant result should be read against);
* :func:`holm`: Holm-Bonferroni adjustment of a family of p-values;
* :func:`compare_statistics`: all of the above for a whole ``comparison`` (the dict that
  ``focusnet compare`` writes as ``comparison.json``), stored by the runner as
  ``comparison["stats"]``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "ALPHA",
    "CI_METHOD",
    "DETECTABLE_DEFINITION",
    "EFFECT_SIZE_DEFINITION",
    "POWER",
    "ZERO_METHOD",
    "bootstrap_ci",
    "compare_statistics",
    "detectable_difference",
    "holm",
    "paired_test",
]

#: Significance level used to flag Holm-adjusted p-values.
ALPHA = 0.05

#: Power at which :func:`detectable_difference` states a test set's resolution.
POWER = 0.8

#: Wilcoxon convention for zero differences (``scipy.stats.wilcoxon(zero_method=...)``).
ZERO_METHOD = "wilcox"

CI_METHOD = (
    "percentile bootstrap of the per-image mean: images resampled with replacement "
    "(numpy.random.default_rng(seed)), the interval is the (1-confidence)/2 and (1+confidence)/2 "
    "quantiles of the resampled means"
)

EFFECT_SIZE_DEFINITION = (
    "matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-), where R+ (R-) is the sum "
    "of the ranks of |d| over the pairs with d > 0 (d < 0), d = other - reference, zero "
    "differences dropped (as zero_method='wilcox'), average ranks for ties; r is in [-1, 1], "
    "positive means the other model scores higher than the reference, 0 means no tendency"
)

DETECTABLE_DEFINITION = (
    "the smallest true mean difference that a two-sided paired test at alpha detects with the given power "
    "on these images: (z(1 - alpha/2) + z(power)) * sd(d) / sqrt(n), sd the observed standard deviation of the "
    "paired differences d (normal approximation of the paired t-test; the Wilcoxon test's efficiency "
    "relative to it is 0.955 for normal differences and higher for heavy-tailed ones)"
)


def _floats(values: Iterable[float | None]) -> np.ndarray:
    """A float64 array with None read as NaN."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def bootstrap_ci(
    values: Sequence[float | None] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    The values (one per image) are resampled with replacement ``n_resamples`` times with
    ``numpy.random.default_rng(seed)``; the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (linear interpolation) of the resampled means. The percentile
    method is used rather than BCa because it is transparent, never degenerates (BCa is undefined
    when all resampled means are equal) and, for means of tens of images, differs from BCa by far
    less than the interval's width. The result depends only on the values, the arguments and numpy's
    PCG64 generator, so it is reproducible.

    Args:
        values: per-image values; NaN and None are dropped.
        confidence: coverage of the interval, in (0, 1).
        n_resamples: number of bootstrap resamples (at least 1).
        seed: seed of the random generator.

    Returns:
        ``(low, high)``; ``(nan, nan)`` with fewer than 2 finite values.

    Example:
        >>> low, high = bootstrap_ci([0.8, 0.85, 0.9, 0.7, 0.95], n_resamples=2000)
        >>> low < 0.84 < high
        True
        >>> bootstrap_ci([0.8, float("nan")])
        (nan, nan)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1; got {n_resamples}")
    x = _floats(values)
    x = x[~np.isnan(x)]
    n = x.size
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    batch = max(1, 2_000_000 // n)  # bounds memory at about 16 MB of indices per batch
    for start in range(0, n_resamples, batch):
        stop = min(n_resamples, start + batch)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


def holm(pvalues: Sequence[float | None] | np.ndarray) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down; controls the family-wise error rate).

    With the m finite p-values sorted increasingly, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``: monotone in the raw p-values and capped
    at 1. NaN (or None) entries are not part of the family (m counts finite values only) and come
    back as NaN, in place. Reject hypothesis i at level alpha when its adjusted value <= alpha.

    Args:
        pvalues: raw p-values, in any order.

    Returns:
        The adjusted p-values, in the order given.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005])
        [0.03, 0.06, 0.06, 0.02]
        >>> holm([0.2, float("nan")])
        [0.2, nan]
    """
    p = _floats(pvalues)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def detectable_difference(differences: Sequence[float] | np.ndarray, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The smallest true mean of paired ``differences`` that a two-sided test at ``alpha`` detects with
    probability ``power``, from their observed spread (:data:`DETECTABLE_DEFINITION`): a comparison whose
    difference is smaller than this is below the test set's resolution. NaN for fewer than two values.

    Example:
        >>> round(detectable_difference([0.1, -0.1] * 50), 4)  # sd 0.1005 over 100 images
        0.0282
    """
    d = _floats(differences)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return math.nan
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(z * d.std(ddof=1) / math.sqrt(d.size))


def _rank_biserial(d: np.ndarray) -> tuple[float, float, float]:
    """(r, R+, R-) of the non-zero differences ``d`` (average ranks of |d| for ties)."""
    from scipy.stats import rankdata

    nonzero = d[d != 0]
    if nonzero.size == 0:
        return (0.0, 0.0, 0.0)
    ranks = rankdata(np.abs(nonzero))
    r_plus = float(ranks[nonzero > 0].sum())
    r_minus = float(ranks[nonzero < 0].sum())
    return ((r_plus - r_minus) / (r_plus + r_minus), r_plus, r_minus)


def paired_test(
    reference_values: Sequence[float | None] | np.ndarray,
    other_values: Sequence[float | None] | np.ndarray,
) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired values, with effect size.

    Pairs are taken by position; a pair with a NaN (or None) on either side is dropped. The test is
    ``scipy.stats.wilcoxon(other - reference, zero_method="wilcox", alternative="two-sided",
    method="auto")``: zero differences are discarded (Wilcoxon's original convention) and scipy
    picks the exact null distribution for up to 50 differences without ties and the normal
    approximation (with tie correction) otherwise. When every difference is zero there is nothing to
    test: the result is ``p = 1``, ``W = 0`` and effect size 0, without calling scipy.

    Effect size: the matched-pairs rank-biserial correlation
    ``r = (R+ - R-) / (R+ + R-)``, with R+ (R-) the sum of the ranks of ``|d|`` over the pairs with
    ``d = other - reference > 0`` (``< 0``), zero differences dropped and average ranks for ties
    (Kerby's simple difference formula). ``r`` is in [-1, 1]; positive means ``other`` scores
    higher (better, for Dice or Jaccard), 1 means it is higher on every pair that differs.

    Args:
        reference_values: per-image values of the reference model.
        other_values: per-image values of the other model, in the same order.

    Returns:
        ``{"n": pairs used, "n_nonzero": pairs with a non-zero difference, "n_dropped": pairs
        dropped for NaN, "mean_difference", "median_difference" (other - reference), "statistic":
        scipy's W = min(R+, R-), "r_plus", "r_minus", "pvalue", "effect_size",
        "detectable_difference"}`` (:func:`detectable_difference` at alpha 0.05, power 0.8). With no
        pair left, every number is NaN (``n`` is 0).

    Example:
        >>> t = paired_test([0.70, 0.80, 0.75, 0.60, 0.90], [0.80, 0.85, 0.90, 0.70, 0.95])
        >>> t["n"], round(t["mean_difference"], 3), t["effect_size"], t["pvalue"]
        (5, 0.09, 1.0, 0.0625)
        >>> paired_test([0.5, 0.6], [0.5, 0.6])["pvalue"]
        1.0
    """
    ref = _floats(reference_values)
    other = _floats(other_values)
    if ref.shape != other.shape or ref.ndim != 1:
        raise ValueError(f"paired values must be two 1-D sequences of equal length; got {ref.shape} and {other.shape}")
    keep = ~(np.isnan(ref) | np.isnan(other))
    d = other[keep] - ref[keep]
    n = int(d.size)
    result: dict[str, Any] = {
        "n": n,
        "n_nonzero": int(np.count_nonzero(d)),
        "n_dropped": int((~keep).sum()),
        "mean_difference": math.nan,
        "median_difference": math.nan,
        "statistic": math.nan,
        "r_plus": math.nan,
        "r_minus": math.nan,
        "pvalue": math.nan,
        "effect_size": math.nan,
        "detectable_difference": math.nan,
    }
    if n == 0:
        return result
    effect, r_plus, r_minus = _rank_biserial(d)
    result.update(
        mean_difference=float(d.mean()),
        median_difference=float(np.median(d)),
        r_plus=r_plus,
        r_minus=r_minus,
        effect_size=float(effect),
        detectable_difference=detectable_difference(d),
    )
    if result["n_nonzero"] == 0:
        result.update(statistic=0.0, pvalue=1.0)
        return result
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        test = wilcoxon(d, zero_method=ZERO_METHOD, alternative="two-sided", method="auto")
    result.update(statistic=float(test.statistic), pvalue=float(test.pvalue))
    return result


def _per_image(model: Mapping[str, Any], metric: str) -> dict[str, float] | None:
    """``{image id: value}`` of one metric from a done model's summary; None if there is none."""
    summary = model.get("summary") or {}
    rows = summary.get("per_image")
    if not rows:
        return None
    return {str(r["id"]): (math.nan if r.get(metric) is None else float(r[metric])) for r in rows}


def _json_number(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _scipy_version() -> str:
    try:
        import scipy

        return scipy.__version__
    except ImportError:  # pragma: no cover - scipy is a core dependency
        return "unavailable"


def compare_statistics(
    comparison: Mapping[str, Any],
    metric: str = "dice",
    metrics_for_ci: Sequence[str] = ("dice", "jaccard"),
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Bootstrap CIs per model and paired tests against the reference, for a ``comparison``.

    Only models with ``status == "done"`` and a ``summary["per_image"]`` list take part; the others
    are listed under ``skipped``. Per-image values that are None (undefined) are dropped.

    Returned schema (JSON-serialisable; NaN is written as None):

    .. code-block:: text

        {
          "protocol": {                     # how everything below was computed
            "metric": "dice",               # metric of the paired tests
            "ci_metrics": ["dice", "jaccard"],
            "ci_method": str, "confidence": 0.95, "n_resamples": 10000, "seed": 0,
            "test": str, "zero_method": "wilcox", "wilcoxon_method": str,
            "correction": str, "alpha": 0.05, "effect_size": str, "pairing": str,
            "unit": str, "scipy": "<version>",
          },
          "reference": "focusnetpp" | None,
          "ci": {                           # one entry per done model, in comparison order
            "<model name>": {"<metric>": {"mean": float, "low": float, "high": float, "n": int}},
          },
          "tests": {                        # one entry per done non-reference model
            "<model name>": {
              "reference": str, "metric": str,
              "n", "n_nonzero", "n_dropped", "n_unpaired",   # pairs used / non-zero / NaN / id missing
              "mean_difference", "median_difference",        # other - reference
              "statistic", "r_plus", "r_minus", "pvalue",    # Wilcoxon W = min(R+, R-), raw p
              "pvalue_holm", "significant",                  # Holm across all tests; p_holm <= alpha
              "effect_size",                                 # rank-biserial r, > 0: other better
              "detectable_difference",                       # the test set's resolution (80% power)
            },
          },
          "skipped": {"<model name>": "reason"},             # failed or without per-image rows
          "notes": [str, ...],              # e.g. why "tests" is empty
        }

    Args:
        comparison: the ``comparison`` dict (``models``, ``reference``, ...).
        metric: per-image metric compared by the tests.
        metrics_for_ci: per-image metrics given a bootstrap CI.
        confidence, n_resamples, seed: see :func:`bootstrap_ci`.
        alpha: level at which a Holm-adjusted p-value is flagged ``significant``.

    Example:
        >>> def model(name, dice):
        ...     rows = [{"id": str(i), "dice": d, "jaccard": d / (2 - d)} for i, d in enumerate(dice)]
        ...     return {"name": name, "status": "done", "summary": {"per_image": rows}}
        >>> comp = {"reference": "a", "models": [model("a", [0.9, 0.8, 0.85]),
        ...                                      model("b", [0.7, 0.6, 0.8])]}
        >>> s = compare_statistics(comp, n_resamples=500)
        >>> s["tests"]["b"]["effect_size"], s["tests"]["b"]["pvalue"]
        (-1.0, 0.25)
        >>> sorted(s["ci"]["a"])
        ['dice', 'jaccard']
    """
    reference = comparison.get("reference")
    protocol: dict[str, Any] = {
        "metric": metric,
        "ci_metrics": list(metrics_for_ci),
        "ci_method": CI_METHOD,
        "confidence": confidence,
        "n_resamples": n_resamples,
        "seed": seed,
        "test": (
            f"two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) of the paired per-image "
            f"{metric} differences d = other - reference; p = 1 when every difference is 0"
        ),
        "zero_method": f"{ZERO_METHOD} (zero differences are discarded before ranking)",
        "wilcoxon_method": (
            "auto: exact null distribution for up to 50 differences without ties, otherwise the "
            "normal approximation with tie correction (exhaustive permutations for up to 13 "
            "differences with ties), no continuity correction"
        ),
        "correction": (
            "Holm-Bonferroni step-down across the tests of all non-reference models "
            "(one family, one test per model)"
        ),
        "alpha": alpha,
        "effect_size": EFFECT_SIZE_DEFINITION,
        "detectable_difference": f"{DETECTABLE_DEFINITION}; alpha {ALPHA}, power {POWER}",
        "pairing": (
            "by image id: only images present in both models' per-image rows with a defined value "
            "on both sides are paired"
        ),
        "unit": "One test image = one observation; metrics at each image's original resolution",
        "scipy": _scipy_version(),
    }
    out: dict[str, Any] = {
        "protocol": protocol,
        "reference": reference,
        "ci": {},
        "tests": {},
        "skipped": {},
        "notes": [],
    }

    values: dict[str, dict[str, dict[str, float]]] = {}
    for model in comparison.get("models", []):
        name = str(model.get("name"))
        if model.get("status") != "done":
            out["skipped"][name] = f"status {model.get('status')!r}: {model.get('error') or 'no error given'}"
            continue
        per_metric = {m: _per_image(model, m) for m in dict.fromkeys([metric, *metrics_for_ci])}
        if any(v is None for v in per_metric.values()):
            out["skipped"][name] = "no per-image metrics (summary['per_image'] missing or empty)"
            continue
        read = {m: v for m, v in per_metric.items() if v is not None}  # all of them: checked above
        values[name] = read
        ci: dict[str, Any] = {}
        for m in metrics_for_ci:
            x = np.array(list(read[m].values()), dtype=np.float64)
            finite = x[~np.isnan(x)]
            low, high = bootstrap_ci(finite, confidence=confidence, n_resamples=n_resamples, seed=seed)
            ci[m] = {
                "mean": _json_number(float(finite.mean())) if finite.size else None,
                "low": _json_number(low),
                "high": _json_number(high),
                "n": int(finite.size),
            }
        out["ci"][name] = ci

    if reference is None:
        out["notes"].append("no reference model: no paired tests")
        return out
    if reference not in values:
        why = out["skipped"].get(reference, "not among the models")
        out["notes"].append(f"reference {reference!r} has no per-image results ({why}): no paired tests")
        return out

    ref_values = values[reference][metric]
    tests: dict[str, dict[str, Any]] = {}
    for name, model_values in values.items():
        if name == reference:
            continue
        other_values = model_values[metric]
        common = [i for i in ref_values if i in other_values]
        result = paired_test([ref_values[i] for i in common], [other_values[i] for i in common])
        unpaired = len(set(ref_values) ^ set(other_values))
        tests[name] = {"reference": reference, "metric": metric, **result, "n_unpaired": unpaired}
        if unpaired:
            out["notes"].append(f"{name}: {unpaired} image id(s) not in both {name} and {reference}; left out")
    adjusted = holm([t["pvalue"] for t in tests.values()])
    for t, p_holm in zip(tests.values(), adjusted):
        t["pvalue_holm"] = p_holm
        t["significant"] = bool(not math.isnan(p_holm) and p_holm <= alpha)
        for key, value in t.items():
            if isinstance(value, float):
                t[key] = _json_number(value)
    out["tests"] = tests
    if not tests:
        out["notes"].append("no done model besides the reference: no paired tests")
    return out
