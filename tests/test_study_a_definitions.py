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
