"""bar_significance(method="permutation"): the longest bars against coordinate-permuted clouds.

The default method, the universal null, is tested in test_significance_null.py.
"""

import numpy as np
import pytest

from sktopo import bar_significance, persistence
from sktopo.datasets import make_circle


def test_noisy_circle_loop_is_significant_and_the_rest_is_not():
    X = make_circle(100, noise=0.1, random_state=0)
    bars = bar_significance(X, method="permutation", n_permutations=49, random_state=0)
    assert list(bars.columns) == ["birth", "death", "lifetime", "ratio", "p_value"]
    assert bars["p_value"].iloc[0] == pytest.approx(1 / 50)  # no null cloud has a bar as long
    assert (bars["p_value"].iloc[1:] > 0.5).all()  # the small noise loops are not
    # the tested bars are the diagram's longest, longest first
    finite = persistence(X, (1,)).finite(1)
    longest = np.sort(finite[:, 1] - finite[:, 0])[::-1][:len(bars)]
    np.testing.assert_allclose(bars["lifetime"], longest)
    assert len(bars.attrs["null_longest"]) == 49


def test_gaussian_blob_longest_bar_is_not_significant():
    X = np.random.default_rng(0).normal(size=(100, 2))
    bars = bar_significance(X, method="permutation", n_permutations=49, random_state=0)
    assert bars["p_value"].iloc[0] > 0.2


def test_exact_under_the_null():
    # independent Gaussian coordinates satisfy the null exactly: the observed longest bar is
    # exchangeable with the 19 null ones, so P(p <= 0.05) = 1/20. Over 40 blobs the count is
    # Binomial(40, 0.05) (mean 2; P(count >= 7) < 0.002); a test that ignored ties or
    # compared against the wrong null would be far off.
    hits = 0
    for seed in range(40):
        X = np.random.default_rng(seed).normal(size=(50, 2))
        hits += bar_significance(X, method="permutation", n_permutations=19, n_bars=1,
                                 random_state=seed)["p_value"].iloc[0] <= 0.05
    assert hits <= 6


def test_seeded_and_validated():
    X = make_circle(60, noise=0.2, random_state=1)
    a = bar_significance(X, method="permutation", n_permutations=9, random_state=3)
    b = bar_significance(X, method="permutation", n_permutations=9, random_state=3)
    np.testing.assert_array_equal(a.attrs["null_longest"], b.attrs["null_longest"])
    assert a.equals(b)
    with pytest.raises(ValueError, match="bar_significance: X must be a 2-D cloud"):
        bar_significance(np.arange(10.0)[:, None])
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 1"):
        bar_significance(X, n_permutations=0)
