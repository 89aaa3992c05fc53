"""redzed-tda, a young dependency, against ripser.py on a few hundred generated clouds.

Run in CI on every install, so a release in the pinned range that disagrees with
the mature reference fails here before it computes anyone's diagrams. Both engines
compare distances in float32, so the bars must be identical, not merely close.
"""

import numpy as np
import pytest
import ripser
from scipy.spatial.distance import pdist, squareform

redzed_tda = pytest.importorskip("redzed_tda")

from sktopo.datasets import make_circle, make_sphere, make_torus  # noqa: E402
from sktopo.topology.engines import compute_bars  # noqa: E402


def _cases():
    """``(name, distance matrix, maxdim, threshold)``: ties, duplicates, thresholds, H2, d to 384."""
    rng = np.random.default_rng(20261206)
    cases = []
    for k in range(120):  # Gaussian clouds, d = 1 to 384
        d = int(rng.choice([1, 2, 3, 5, 16, 64, 384]))
        n = int(rng.integers(4, 90))
        cases.append((f"gaussian{k}-d{d}", rng.normal(size=(n, d)), 1))
    for k in range(30):  # manifolds with their loops and voids
        n = int(rng.integers(20, 120))
        cases.append((f"circle{k}", make_circle(n, noise=0.1, random_state=k), 1))
        cases.append((f"torus{k}", make_torus(n, noise=0.05, random_state=k), 2 if n <= 60 else 1))
        cases.append((f"sphere{k}", make_sphere(min(n, 60), dim=2, noise=0.05, random_state=k), 2))
    for k in range(40):  # integer grids: many equal distances, duplicate points
        n, d = int(rng.integers(6, 60)), int(rng.integers(1, 4))
        X = rng.integers(0, 4, size=(n, d)).astype(float)
        X = np.vstack([X, X[: int(rng.integers(0, n // 2 + 1))]])
        cases.append((f"grid{k}", X, 2 if len(X) <= 40 else 1))
    for k in range(30):  # small clouds up to H3
        n = int(rng.integers(4, 22))
        cases.append((f"h3-{k}", rng.normal(size=(n, int(rng.integers(2, 6)))), 3))
    out = []
    for name, X, maxdim in cases:
        D = squareform(pdist(X))
        out.append((name, D, maxdim, np.inf))
        positive = D[D > 0]
        if positive.size:
            # a threshold among the distances themselves: edges exactly at it must enter
            out.append((name + "-thresh", D, maxdim, float(np.quantile(positive, 0.3, method="lower"))))
    return out


CASES = _cases()


def _bars(dgm):
    dgm = np.asarray(dgm, dtype=float).reshape(-1, 2)
    dgm = dgm[dgm[:, 1] > dgm[:, 0]]
    return dgm[np.lexsort((dgm[:, 1], dgm[:, 0]))]


def test_the_generated_set_is_a_few_hundred_cases():
    assert len(CASES) >= 400
    assert {maxdim for _, _, maxdim, _ in CASES} == {1, 2, 3}


@pytest.mark.parametrize("start", range(0, len(CASES), 70))
def test_redzed_equals_ripser(start):
    for name, D, maxdim, thresh in CASES[start:start + 70]:
        ours = redzed_tda.rips(D, maxdim=maxdim, threshold=thresh)
        ref = ripser.ripser(D, distance_matrix=True, maxdim=maxdim, thresh=thresh)["dgms"]
        for q in range(maxdim + 1):
            a, b = _bars(ours[q]), _bars(ref[q])
            assert a.shape == b.shape, f"{name} H{q}: {len(a)} bars vs ripser.py's {len(b)}"
            assert np.array_equal(a, b), f"{name} H{q}: bars differ from ripser.py's"


@pytest.mark.parametrize("start", range(0, len(CASES), 140))
def test_the_redzed_engine_equals_ripser_through_the_pipeline(start):
    # our own path: the enclosing radius cut, the condensed matrix, the cleaning
    for name, D, maxdim, thresh in CASES[start:start + 140:3]:
        dims = tuple(range(maxdim + 1))
        ours = compute_bars(D, engine="redzed", homology_dimensions=dims, metric="precomputed",
                            threshold=thresh)
        ref = compute_bars(D, engine="ripser", homology_dimensions=dims, metric="precomputed",
                           threshold=thresh)
        for q in dims:
            assert np.array_equal(_bars(ours[q]), _bars(ref[q])), f"{name} H{q}"
