"""Quotient (relative) persistence, metric side: the construction by hand, ripser equality.

The torch-side estimator (QuotientPersistence) is tested in test_quotient.py.
"""

import numpy as np
import pytest
from ripser import ripser

from sktopo.datasets import make_circle
from sktopo.topology.relative import _rips, quotient_distances, quotient_persistence


def line_distances(x):
    x = np.asarray(x, dtype=float)
    return np.abs(x[:, None] - x[None, :])


def test_quotient_distances_by_hand():
    D = line_distances([0, 1, 2, 3, 10])
    # Points 0 and 3 collapse: 1 -> {0, 3} is 1, 2 -> {0, 3} is 1, 10 -> {0, 3} is 7.
    Q, nodes = quotient_distances(D, [0, -1, -1, 0, -1])
    np.testing.assert_array_equal(nodes, [0, 1, 2, 0, 3])
    np.testing.assert_allclose(Q, [[0, 1, 1, 7], [1, 0, 1, 8], [1, 1, 0, 8], [7, 8, 8, 0]])
    # Two separate regions vs everything collapsed together.
    Q2, nodes2 = quotient_distances(D, [0, 0, -1, 1, 1], collapse="region")
    np.testing.assert_allclose(Q2, [[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    Q3, _ = quotient_distances(D, [0, 0, -1, 1, 1], collapse="all")
    np.testing.assert_allclose(Q3, [[0, 1], [1, 0]])
    # No labels: the metric is unchanged; duplicate points (zero distances) stay at 0.
    D4 = line_distances([0, 0, 1])
    np.testing.assert_allclose(quotient_distances(D4, [-1, -1, -1])[0], D4)


def test_shortest_paths_restore_the_triangle_inequality():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    labels = np.where(rng.random(40) < 0.5, rng.integers(0, 4, 40), -1)
    Q, _ = quotient_distances(D, labels)
    assert (Q[:, :, None] <= Q[:, None, :] + Q.T[None, :, :] + 1e-12).all()
    assert np.allclose(Q, Q.T) and (np.diag(Q) == 0).all()


def test_quotient_persistence_equals_ripser_on_quotient_metric():
    X = 2 * make_circle(50, random_state=1)
    labels = np.full(50, -1)
    labels[:10] = 0
    Q, _ = quotient_distances(np.linalg.norm(X[:, None] - X[None], axis=-1), labels)
    want = ripser(Q, distance_matrix=True, maxdim=1)["dgms"]
    got = quotient_persistence(X, labels)
    for q in (0, 1):
        np.testing.assert_allclose(got[q], want[q][np.lexsort((want[q][:, 1], want[q][:, 0]))])


def test_bad_quotient_inputs():
    with pytest.raises(ValueError, match="square"):
        quotient_distances(np.ones((2, 3)), [0, 0])
    with pytest.raises(ValueError, match="one entry per point"):
        quotient_distances(np.zeros((2, 2)), [0])
    with pytest.raises(ValueError, match="collapse"):
        quotient_distances(np.zeros((2, 2)), [0, 0], collapse="some")


def test_duplicate_points_add_no_bars():
    # many features: sklearn's matrix-product distances leave ~1e-7 between
    # identical points, which would be tiny H0 bars
    rng = np.random.default_rng(0)
    X = 3 * rng.normal(size=(40, 30)) + 5
    X_dup = np.vstack([X, X[:10]])
    diagram = quotient_persistence(X_dup, -np.ones(len(X_dup)), homology_dimensions=(0,))
    assert len(diagram[0]) == len(X)


def test_quotient_persistence_checks_homology_dimensions():
    with pytest.raises(ValueError, match="quotient_persistence: homology_dimensions has repeated"):
        quotient_persistence(np.eye(3), [-1, -1, -1], homology_dimensions=(1, 1))


def test_landmark_subsample_of_a_distance_matrix():
    # study B's fallback: persistence of a greedy max-min subsample of the (quotient) metric
    X = 2 * make_circle(200, random_state=0)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    D_before = D.copy()
    full = _rips(D, (0, 1))
    sub = _rips(D, (0, 1), n_landmarks=40, random_state=0)
    np.testing.assert_array_equal(D, D_before)  # the caller's matrix is not modified
    assert len(sub[0]) == 40 and sub.n_points == 200 and sub.n_landmarks == 40
    assert 0 < sub.covering_radius < 0.5
    # the circle survives the subsample; its death moves by at most about the covering radius
    assert len(sub.finite(1)) >= 1
    assert abs(sub[1][:, 1].max() - full[1][:, 1].max()) <= 2 * sub.covering_radius
    again = _rips(D, (0, 1), n_landmarks=40, random_state=0)
    assert again == sub
    assert _rips(D, (0,), n_landmarks=500) == _rips(D, (0,))  # more landmarks than points


def test_topology_imports_without_torch():
    # Layering: sktopo.topology (relative.py included) never imports torch or sktopo.nn.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "import sktopo.topology, sktopo.topology.relative, sktopo.topology.persistence\n"
        "from sktopo.topology.relative import quotient_persistence\n"
        "x = np.linspace(0, 6.2, 30)\n"
        "d = quotient_persistence(np.c_[np.cos(x), np.sin(x)], [0] * 5 + [-1] * 25)\n"
        "assert len(d[1]) == 1\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'sktopo.nn'))]\n"
        "assert not bad, bad\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
