"""focusnet.compare.stats: Holm, Wilcoxon + rank-biserial, bootstrap CIs, compare_statistics."""
from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from focusnet.compare import stats
from focusnet.compare.stats import bootstrap_ci, compare_statistics, detectable_difference, holm, paired_test
from focusnet.metrics import summarize


def test_doctests():
    assert doctest.testmod(stats).failed == 0


def test_holm_hand_computed():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06 monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN passes through and is not counted in m (m = 2 here): 0.2 x 2 = 0.4, 0.6 x 1 = 0.6
    out = holm([0.6, float("nan"), 0.2, None])
    assert out[0] == pytest.approx(0.6) and out[2] == pytest.approx(0.4)
    assert math.isnan(out[1]) and math.isnan(out[3])
    # capped at 1: 0.4 x 3 = 1.2, 0.5 x 2 = 1.0, 0.9 x 1
    assert holm([0.9, 0.4, 0.5]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([0.02, 0.5]) == pytest.approx([0.04, 0.5])
    assert holm([]) == []
    assert holm([0.03]) == pytest.approx([0.03])


def test_paired_test_matches_scipy_and_signs():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0.6, 0.9, 30)
    better = np.clip(ref + rng.uniform(0.01, 0.08, 30), 0, 1)  # every image improves
    t = paired_test(ref, better)
    direct = wilcoxon(better - ref, zero_method="wilcox", alternative="two-sided")
    assert t["pvalue"] == pytest.approx(direct.pvalue) and t["statistic"] == pytest.approx(direct.statistic)
    assert t["pvalue"] < 1e-6 and t["effect_size"] == pytest.approx(1.0)
    assert t["mean_difference"] > 0 and t["median_difference"] > 0 and t["n"] == 30
    worse = paired_test(ref, ref - 0.05 + rng.normal(0, 0.01, 30))
    assert worse["effect_size"] < -0.9 and worse["pvalue"] < 1e-4 and worse["mean_difference"] < 0

    # mixed signs: the rank-biserial formula by hand; p against scipy (normal approximation, n > 50)
    ref2, other2 = rng.uniform(0.5, 0.9, 60), rng.uniform(0.5, 0.9, 60)
    t2 = paired_test(ref2, other2)
    d = other2 - ref2
    from scipy.stats import rankdata

    ranks = rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    assert t2["effect_size"] == pytest.approx((r_plus - r_minus) / (r_plus + r_minus))
    assert t2["pvalue"] == pytest.approx(wilcoxon(other2, ref2).pvalue)


def test_paired_test_identical_and_nan():
    t = paired_test([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert t["pvalue"] == 1.0 and t["effect_size"] == 0.0 and t["statistic"] == 0.0 and t["n_nonzero"] == 0
    t = paired_test([0.5, float("nan"), 0.9, 0.4], [0.6, 0.8, None, 0.5])
    assert t["n"] == 2 and t["n_dropped"] == 2 and t["effect_size"] == 1.0
    empty = paired_test([float("nan")], [0.3])
    assert empty["n"] == 0 and math.isnan(empty["pvalue"])
    with pytest.raises(ValueError):
        paired_test([0.1, 0.2], [0.1])


def test_detectable_difference_is_the_resolution_of_the_test_set():
    """The smallest true mean difference a paired test detects with 80% power: by the formula, 1/sqrt(n),
    in paired_test's result, NaN below two values, and what it claims: with that true shift, a two-sided
    paired t-test at 0.05 rejects in about 80% of simulated test sets."""
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(3)
    d = rng.normal(0.0, 0.05, 200)
    z = 1.959963984540054 + 0.8416212335729143  # z(0.975) + z(0.8)
    assert detectable_difference(d) == pytest.approx(z * d.std(ddof=1) / math.sqrt(200), rel=1e-12)
    assert detectable_difference(np.tile(d, 4)) == pytest.approx(detectable_difference(d) / 2, rel=0.01)
    assert math.isnan(detectable_difference([0.1])) and math.isnan(detectable_difference([]))
    ref = rng.uniform(0.6, 0.9, 200)
    assert paired_test(ref, ref + d)["detectable_difference"] == pytest.approx(detectable_difference(d), rel=1e-9)
    assert math.isnan(paired_test([float("nan")], [0.3])["detectable_difference"])
    trials, sigma, n = 1000, 0.05, 200
    shift = z * sigma / math.sqrt(n)
    rejected = sum(ttest_1samp(rng.normal(shift, sigma, n), 0.0).pvalue < 0.05 for _ in range(trials))
    # binomial s.d. of the rate: sqrt(0.8 * 0.2 / 1000) = 0.013; the t-test's power at n = 200 is 0.80
    assert abs(rejected / trials - 0.8) < 0.05


def test_bootstrap_ci_contains_mean_narrows_and_is_deterministic():
    rng = np.random.default_rng(0)
    small, large = rng.uniform(0.6, 1.0, 15), rng.uniform(0.6, 1.0, 400)
    lo_s, hi_s = bootstrap_ci(small, n_resamples=2000)
    lo_l, hi_l = bootstrap_ci(large, n_resamples=2000)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2
    assert bootstrap_ci(small, n_resamples=2000, seed=3) == bootstrap_ci(small, n_resamples=2000, seed=3)
    assert bootstrap_ci(small, n_resamples=2000, seed=3) != bootstrap_ci(small, n_resamples=2000, seed=4)
    lo90, hi90 = bootstrap_ci(small, confidence=0.9, n_resamples=2000)
    assert lo_s <= lo90 and hi90 <= hi_s


def test_bootstrap_ci_nan_and_small():
    assert all(math.isnan(v) for v in bootstrap_ci([0.7]))
    assert all(math.isnan(v) for v in bootstrap_ci([0.7, float("nan"), None]))
    with_nan = bootstrap_ci([0.7, 0.8, float("nan"), 0.9], n_resamples=500)
    assert with_nan == bootstrap_ci([0.7, 0.8, 0.9], n_resamples=500)
    assert bootstrap_ci([0.5, 0.5, 0.5], n_resamples=100) == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_ci([0.1, 0.2], confidence=1.5)


def _model(name: str, counts: np.ndarray, ids: list[str], status: str = "done") -> dict:
    return {"name": name, "model": name, "preset": None, "status": status, "error": None, "summary": summarize(counts, ids)}


def _comparison() -> dict:
    rng = np.random.default_rng(2)
    ids = [f"img{i}" for i in range(12)]
    tp = rng.integers(300, 500, 12)
    good = np.stack([tp, rng.integers(0, 20, 12), rng.integers(0, 20, 12), 1000 - tp - 40], 1)
    bad = good + np.array([0, 80, 80, -160])
    models = [_model("ref", good, ids), _model("worse", bad[::-1], ids[::-1]), _model("same", good, ids)]
    models.append({"name": "broken", "model": "unet", "status": "failed", "error": "boom", "summary": None})
    return {"dataset": "folder", "reference": "ref", "models": models}


def test_compare_statistics_schema_and_pairing_by_id():
    comp = _comparison()
    s = compare_statistics(comp, n_resamples=500)
    json.dumps(s, allow_nan=False)  # JSON-serialisable, no NaN
    assert set(s) == {"protocol", "reference", "ci", "tests", "skipped", "notes"}
    assert list(s["ci"]) == ["ref", "worse", "same"] and "broken" in s["skipped"]
    assert set(s["tests"]) == {"worse", "same"}
    ci = s["ci"]["ref"]["dice"]
    assert ci["mean"] == pytest.approx(comp["models"][0]["summary"]["mean"]["dice"]) and ci["n"] == 12
    assert ci["low"] < ci["mean"] < ci["high"]
    worse = s["tests"]["worse"]  # rows stored in reverse order: pairing by id still gives effect -1
    assert worse["effect_size"] == -1.0 and worse["n"] == 12 and worse["n_unpaired"] == 0
    assert worse["pvalue_holm"] == pytest.approx(min(1.0, 2 * worse["pvalue"])) and worse["significant"]
    same = s["tests"]["same"]
    assert same["pvalue"] == 1.0 and same["effect_size"] == 0.0 and not same["significant"]
    proto = s["protocol"]
    for key in ("ci_method", "n_resamples", "seed", "test", "zero_method", "correction", "alpha", "effect_size", "pairing"):
        assert key in proto
    assert proto["alpha"] == 0.05 and proto["n_resamples"] == 500
    assert compare_statistics(comp, n_resamples=500) == s  # deterministic


def test_compare_statistics_without_reference():
    comp = _comparison()
    comp["reference"] = None
    s = compare_statistics(comp, n_resamples=200)
    assert s["tests"] == {} and s["notes"] and set(s["ci"]) == {"ref", "worse", "same"}
    comp["reference"] = "broken"
    s = compare_statistics(comp, n_resamples=200)
    assert s["tests"] == {} and "broken" in s["notes"][0]
