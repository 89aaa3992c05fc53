"""Study A's definitions beside sktopo's (issue 12, item 9): the claims docs/phdim.md makes."""

import pytest

import sktopo
from sktopo.datasets import make_sphere


def test_published_phdim_formula_gives_one_at_alpha_two_on_a_sphere():
    # study A's code returns alpha / (alpha - m); on a 2-sphere with alpha = 2 the slope m
    # of log E_2 against log n is about 0, so it returns 1.00 where the truth is 2
    X = make_sphere(2000, 2, random_state=0)
    phdim = sktopo.ph_dimension(X, alpha=2.0, random_state=0).iloc[0]
    slope = 1 - 2.0 / phdim
    assert phdim == pytest.approx(2.0, abs=0.1)
    assert abs(slope) < 0.05
    assert 2.0 / (2.0 - slope) == pytest.approx(1.0, abs=0.03)


def test_mean_lifespan_recipe_matches_study_a_definition():
    # study A's mean lifespan: the half-sum of the finite H0 bar lengths divided by the number
    # of bars, the infinite one included; docs/gallery/study_a.md gives the recipe below.
    # Reference: ripser's diagram directly.
    import numpy as np
    from ripser import ripser

    X = make_sphere(150, 2, random_state=3)
    bars = ripser(X, maxdim=0)["dgms"][0]
    finite = bars[np.isfinite(bars[:, 1])]
    study_a = 0.5 * np.sum(finite[:, 1] - finite[:, 0]) / len(bars)
    table = sktopo.DiagramFeatures(features=["n_bars", "total_persistence"], p=1) \
        .set_output(transform="pandas").fit_transform(sktopo.PersistenceDiagram((0,))
                                                      .fit_transform([X]))
    recipe = 0.5 * table["H0__total_persistence_p1"] / table["H0__n_bars"]
    assert recipe.iloc[0] == pytest.approx(study_a, rel=1e-6)
    assert len(bars) == 150  # the infinite bar is counted: 149 finite + 1
