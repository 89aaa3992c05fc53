import pickle

import numpy as np
import pytest

from sktopo import Diagram


def test_getitem_dims_and_order():
    d = Diagram([[[0, np.inf], [0, 1.0], [0, 0.5]], [[0.3, 0.9]]], n_points=3)
    assert d.dims == (0, 1)
    np.testing.assert_array_equal(d[0], [[0, 0.5], [0, 1.0], [0, np.inf]])
    with pytest.raises(KeyError, match="dimensions \\(0, 1\\)"):
        d[2]
    assert not d[0].flags.writeable


def test_infinite_policy():
    d = Diagram({0: [[0, 1.0], [0, np.inf]]})
    np.testing.assert_array_equal(d.finite(0), [[0, 1.0]])
    assert d.n_infinite(0) == 1
    t = Diagram({0: [[0, 1.0], [0, np.inf]]}, threshold=2.0)
    np.testing.assert_array_equal(t.finite(0), [[0, 1.0], [0, 2.0]])
    assert d.betti(0, [0.5, 1.5]).tolist() == [2, 1]


def test_pickle_eq_repr():
    d = Diagram({0: [[0, 1.0], [0, np.inf]], 1: np.empty((0, 2))}, n_points=2, threshold=3)
    e = pickle.loads(pickle.dumps(d))
    assert e == d and e.threshold == 3 and e.n_points == 2
    assert repr(d) == "Diagram(H0: 2 bars (1 infinite), H1: 0 bars | 2 points, threshold=3)"
    assert d.to_frame().shape == (2, 4)


def test_bad_bars():
    with pytest.raises(ValueError, match="dies before"):
        Diagram({0: [[1.0, 0.0]]})
    with pytest.raises(ValueError, match=r"\(k, 2\)"):
        Diagram({0: [[1.0, 2.0, 3.0]]})


@pytest.mark.parametrize("bars, match", [
    ([[-np.inf, 1.0]], "born at -inf"),
    ([[np.inf, np.inf]], "born at inf"),
    ([[0.0, np.nan]], "contain NaN"),
    ([[0.0, 1.0], [2.0, 1.5]], r"dies before it is born: \(2.0, 1.5\) \(bar 1\)"),
])
def test_bad_bars_are_refused_with_the_bar(bars, match):
    with pytest.raises(ValueError, match=match):
        Diagram({1: bars})
