"""Representation similarity (issue 24, items 1-2): CKA, SVCCA, PWCCA and Procrustes.

Checked, not trusted: every value is compared with a straightforward float64 transcription of
the published formula written here (Kornblith et al. 2019's linear and RBF CKA through HSIC
with centring matrices; Song et al. 2012's unbiased HSIC; Nguyen et al. 2021's minibatch CKA;
Raghu et al. 2017's SVCCA and Morcos et al. 2018's PWCCA through Hotelling's covariance form of
CCA; Williams et al. 2021's angular Procrustes distance as the arccos of a nuclear norm, and
scipy's orthogonal Procrustes), on random and structured pairs; with ckatorch when installed.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import sktopo
from sktopo import CKA, PWCCA, SVCCA, ProcrustesDistance


# ------------------------------------------------------------------ references
def _centring(n):
    return np.eye(n) - np.ones((n, n)) / n


def ref_hsic(K, L):
    """Biased HSIC, Gretton et al. 2005 / Kornblith et al. 2019: tr(KHLH) / (n-1)^2."""
    n = K.shape[0]
    H = _centring(n)
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def ref_hsic_unbiased(K, L):
    """Song et al. 2012, the unbiased estimator HSIC_1 (Gram matrices with zero diagonals)."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ Kt @ Lt @ one)) / (n * (n - 3))


def ref_cka(K, L, hsic=ref_hsic):
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def gram_linear(X):
    return X @ X.T


def gram_rbf(X, threshold):
    """Kornblith et al.'s gram_rbf: bandwidth = threshold * sqrt(median squared distance)."""
    dot = X @ X.T
    sq_norms = np.diag(dot)
    sq_distances = -2 * dot + sq_norms[:, None] + sq_norms[None, :]
    return np.exp(-sq_distances / (2 * threshold ** 2 * np.median(sq_distances)))


def ref_minibatch_cka(X, Y, batches):
    """Nguyen et al. 2021: unbiased HSICs averaged over minibatches, then the ratio."""
    xy = np.mean([ref_hsic_unbiased(gram_linear(X[b]), gram_linear(Y[b])) for b in batches])
    xx = np.mean([ref_hsic_unbiased(gram_linear(X[b]), gram_linear(X[b])) for b in batches])
    yy = np.mean([ref_hsic_unbiased(gram_linear(Y[b]), gram_linear(Y[b])) for b in batches])
    return xy / np.sqrt(xx * yy)


def _inv_sqrt(S):
    w, V = np.linalg.eigh(S)
    return V @ np.diag(1.0 / np.sqrt(w)) @ V.T


def ref_cca(A, B):
    """Hotelling's CCA: correlations are the singular values of Saa^-1/2 Sab Sbb^-1/2;
    returns them and the canonical variates of A and of B (columns)."""
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    Wa, Wb = _inv_sqrt(A.T @ A), _inv_sqrt(B.T @ B)
    U, rho, Vt = np.linalg.svd(Wa @ (A.T @ B) @ Wb, full_matrices=False)
    return rho, A @ Wa @ U, B @ Wb @ Vt.T


def ref_svcca(X, Y, keep=0.99):
    """Raghu et al. 2017: keep the singular directions explaining `keep` of the variance,
    then the mean canonical correlation."""
    def reduce(A):
        A = A - A.mean(axis=0)
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        explained = np.cumsum(s ** 2) / np.sum(s ** 2)
        k = int(np.argmax(explained >= keep - 1e-12)) + 1
        return U[:, :k] * s[:k]
    rho, _, _ = ref_cca(reduce(X), reduce(Y))
    return float(np.mean(rho))


def ref_pwcca(X, Y):
    """Morcos et al. 2018: sum_i alpha_i rho_i, alpha_i ~ sum_j |<h_i, x_j>| over the neurons
    x_j of the representation with fewer neurons (the authors' code's choice)."""
    rho, HX, HY = ref_cca(X, Y)
    if X.shape[1] <= Y.shape[1]:
        H, A = HX, X - X.mean(axis=0)
    else:
        H, A = HY, Y - Y.mean(axis=0)
    H = H / np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ A).sum(axis=1)
    return float(np.sum(alpha / alpha.sum() * rho))


def ref_procrustes(X, Y):
    """Williams et al. 2021: arccos of the nuclear norm of X^T Y, both centred, unit norm and
    padded to one width."""
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    X, Y = X / np.linalg.norm(X), Y / np.linalg.norm(Y)
    width = max(X.shape[1], Y.shape[1])
    X = np.hstack([X, np.zeros((len(X), width - X.shape[1]))])
    Y = np.hstack([Y, np.zeros((len(Y), width - Y.shape[1]))])
    return float(np.arccos(np.clip(np.linalg.svd(X.T @ Y, compute_uv=False).sum(), -1, 1)))


# ------------------------------------------------------------------ data
def _rng(seed=0):
    return np.random.default_rng(seed)


def _orthogonal(d, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return Q


def _pairs():
    """Random and structured pairs of representations of the same inputs."""
    rng = _rng(1)
    X = rng.normal(size=(120, 12))
    W = rng.normal(size=(12, 20))
    low_rank = rng.normal(size=(120, 3)) @ rng.normal(size=(3, 15)) + 0.01 * rng.normal(size=(120, 15))
    clusters = np.repeat(rng.normal(scale=4, size=(4, 9)), 30, axis=0) + rng.normal(size=(120, 9))
    return {
        "independent": (X, rng.normal(size=(120, 7))),
        "tanh_layer": (X, np.tanh(X @ W / 3) + 0.1 * rng.normal(size=(120, 20))),
        "relu_layer": (X, np.maximum(X @ W, 0)),
        "low_rank": (low_rank, X[:, :5] + 0.3 * rng.normal(size=(120, 5))),
        "clusters": (clusters, clusters @ rng.normal(size=(9, 6)) + rng.normal(size=(120, 6))),
        "anisotropic": (X * np.geomspace(1, 100, 12), X[:, ::-1] + 0.5 * rng.normal(size=(120, 12))),
    }


PAIRS = _pairs()


# ------------------------------------------------------------ identities
@pytest.mark.parametrize("shape", [(60, 8), (30, 90)], ids=["narrow", "wider_than_n"])
def test_identical_representations(shape):
    X = _rng(0).normal(size=shape)
    for params in ({}, {"unbiased": True}, {"kernel": "rbf"}, {"kernel": "rbf", "unbiased": True}):
        assert sktopo.cka(X, X, **params) == pytest.approx(1.0, abs=1e-12)
    assert sktopo.procrustes_distance(X, X) < 1e-12  # not ~1.5e-8, as arccos(1 - eps) gives
    assert sktopo.procrustes_distance(X, X) >= 0
    if shape[1] < shape[0]:
        assert sktopo.svcca(X, X) == pytest.approx(1.0, abs=1e-12)
        assert sktopo.pwcca(X, X) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------- invariances
def test_cka_and_procrustes_invariant_to_orthogonal_maps_scaling_and_translation():
    rng = _rng(2)
    for X, Y in PAIRS.values():
        Xt = 7.5 * X @ _orthogonal(X.shape[1], rng) + rng.normal(size=X.shape[1])
        Yt = 0.01 * Y @ _orthogonal(Y.shape[1], rng) - 3.0
        for params in ({}, {"unbiased": True}, {"kernel": "rbf", "bandwidth": 0.5}):
            assert sktopo.cka(Xt, Yt, **params) == pytest.approx(sktopo.cka(X, Y, **params),
                                                                  abs=1e-10)
        assert sktopo.procrustes_distance(Xt, Yt) == pytest.approx(
            sktopo.procrustes_distance(X, Y), abs=1e-10)
        # ... and SVCCA's reduction keeps that invariance too
        assert sktopo.svcca(Xt, Yt) == pytest.approx(sktopo.svcca(X, Y), abs=1e-8)


def test_cca_invariant_to_invertible_linear_maps_cka_is_not():
    rng = _rng(3)
    X, Y = PAIRS["tanh_layer"]
    A = rng.normal(size=(X.shape[1], X.shape[1])) * np.geomspace(1, 30, X.shape[1])
    B = rng.normal(size=(Y.shape[1], Y.shape[1]))
    assert np.linalg.cond(A) > 10
    # mean CCA (SVCCA without its reduction) sees through any invertible map of either side
    assert sktopo.svcca(X @ A, Y @ B, n_components=1.0) == pytest.approx(
        sktopo.svcca(X, Y, n_components=1.0), abs=1e-8)
    # PWCCA: the correlations and the weighting side's variates do not change when the OTHER
    # representation is mapped; X (12 neurons) weights here
    assert sktopo.pwcca(X, Y @ B) == pytest.approx(sktopo.pwcca(X, Y), abs=1e-8)
    perm = rng.permutation(X.shape[1])
    assert sktopo.pwcca(3 * X[:, perm], Y) == pytest.approx(sktopo.pwcca(X, Y), abs=1e-8)
    # CKA and Procrustes are not invariant to a general invertible map (that is their point)
    assert abs(sktopo.cka(X @ A, Y) - sktopo.cka(X, Y)) > 0.05
    assert abs(sktopo.procrustes_distance(X @ A, Y) - sktopo.procrustes_distance(X, Y)) > 0.05


# ------------------------------------------------------ the references
@pytest.mark.parametrize("name", list(PAIRS))
def test_cka_equals_the_hsic_formulas(name):
    X, Y = PAIRS[name]
    K, L = gram_linear(X), gram_linear(Y)
    assert sktopo.cka(X, Y) == pytest.approx(ref_cka(K, L), rel=1e-10, abs=1e-12)
    assert sktopo.cka(X, Y, unbiased=True) == pytest.approx(
        ref_cka(K, L, ref_hsic_unbiased), rel=1e-9, abs=1e-12)
    for threshold in (0.2, 0.8, 2.0):
        Kr, Lr = gram_rbf(X, threshold), gram_rbf(Y, threshold)
        assert sktopo.cka(X, Y, kernel="rbf", bandwidth=threshold) == pytest.approx(
            ref_cka(Kr, Lr), rel=1e-9, abs=1e-12)
        assert sktopo.cka(X, Y, kernel="rbf", bandwidth=threshold, unbiased=True) == (
            pytest.approx(ref_cka(Kr, Lr, ref_hsic_unbiased), rel=1e-8, abs=1e-12))


def test_feature_form_equals_gram_form():
    # a layer wider than the inputs is held as its n x n Gram matrix; mixed pairs meet both
    from sktopo.similarity._cka import hsic_form, hsic_value, trace_product

    rng = _rng(4)
    X, Y = rng.normal(size=(40, 15)), rng.normal(size=(40, 90)) + rng.normal(size=(40, 1))
    for unbiased in (False, True):
        ref = ref_cka(gram_linear(X), gram_linear(Y),
                      ref_hsic_unbiased if unbiased else ref_hsic)
        for gx in (False, True):
            for gy in (False, True):
                a = hsic_form(X, unbiased=unbiased, gram=gx)
                b = hsic_form(Y, unbiased=unbiased, gram=gy)
                value = hsic_value(trace_product(a, b), a, b, unbiased) / np.sqrt(
                    a.self_term * b.self_term)
                assert value == pytest.approx(ref, rel=1e-10)
        assert sktopo.cka(X, Y, unbiased=unbiased) == pytest.approx(ref, rel=1e-10)


def test_unbiased_hsic_does_not_depend_on_centring():
    # the feature-space (debiased) form centres first; Song's U-statistic on the raw Gram
    # matrix is the same number
    rng = _rng(5)
    X = rng.normal(size=(25, 6)) + 5.0
    Y = rng.normal(size=(25, 4)) - 2.0
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    assert ref_hsic_unbiased(gram_linear(X), gram_linear(Y)) == pytest.approx(
        ref_hsic_unbiased(gram_linear(Xc), gram_linear(Yc)), rel=1e-10)


@pytest.mark.parametrize("name", list(PAIRS))
def test_cca_family_equals_the_published_formulas(name):
    X, Y = PAIRS[name]
    for keep in (0.99, 0.9, 1.0):
        assert sktopo.svcca(X, Y, n_components=keep) == pytest.approx(
            ref_svcca(X, Y, keep), abs=1e-9)
    assert sktopo.pwcca(X, Y) == pytest.approx(ref_pwcca(X, Y), abs=1e-9)
    assert sktopo.pwcca(Y, X) == pytest.approx(ref_pwcca(Y, X), abs=1e-9)


def test_svcca_with_a_number_of_components():
    X, Y = PAIRS["tanh_layer"]

    def reduce(A, k):
        A = A - A.mean(axis=0)
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        return U[:, :k] * s[:k]

    rho, _, _ = ref_cca(reduce(X, 4), reduce(Y, 4))
    assert sktopo.svcca(X, Y, n_components=4) == pytest.approx(np.mean(rho), abs=1e-9)


@pytest.mark.parametrize("name", list(PAIRS))
def test_procrustes_equals_the_nuclear_norm_formula(name):
    from scipy.linalg import orthogonal_procrustes

    X, Y = PAIRS[name]
    value = sktopo.procrustes_distance(X, Y)
    assert value == pytest.approx(ref_procrustes(X, Y), abs=1e-9)
    assert value == pytest.approx(sktopo.procrustes_distance(Y, X), abs=1e-12)
    # scipy's rotation gives the same angle
    Xn = X - X.mean(axis=0)
    Yn = Y - Y.mean(axis=0)
    Xn, Yn = Xn / np.linalg.norm(Xn), Yn / np.linalg.norm(Yn)
    width = max(X.shape[1], Y.shape[1])
    Xp = np.hstack([Xn, np.zeros((len(X), width - X.shape[1]))])
    Yp = np.hstack([Yn, np.zeros((len(Y), width - Y.shape[1]))])
    R, _ = orthogonal_procrustes(Yp, Xp)
    assert value == pytest.approx(np.arccos(np.clip(np.sum(Xp * (Yp @ R)), -1, 1)), abs=1e-7)
    assert 0 <= value <= np.pi / 2 + 1e-12


def test_procrustes_is_a_metric_on_these_layers():
    clouds = [X for pair in PAIRS.values() for X in pair][:8]
    D = sktopo.similarity_table(clouds, measures="procrustes").to_numpy()
    assert np.allclose(D, D.T) and np.allclose(np.diag(D), 0, atol=1e-12)
    for i in range(len(D)):
        for j in range(len(D)):
            assert np.all(D[i, j] <= D[i] + D[:, j] + 1e-12)  # triangle inequality


def test_procrustes_of_a_layer_wider_than_the_inputs():
    rng = _rng(6)
    X, Y = rng.normal(size=(30, 80)), rng.normal(size=(30, 5))
    assert sktopo.procrustes_distance(X, Y) == pytest.approx(ref_procrustes(X, Y), abs=1e-9)


# ------------------------------------------------------------- the bias
def test_unbiased_estimator_removes_the_bias_of_wide_layers_and_few_inputs():
    # independent random layers: the true CKA is 0. With few inputs and wide layers the
    # biased estimator is near 1; the unbiased one stays near 0, at every width
    rng = _rng(7)
    n = 16
    biased, unbiased = {}, {}
    for width in (50, 500, 4000):
        values_b, values_u = [], []
        for _ in range(6):
            X, Y = rng.normal(size=(n, width)), rng.normal(size=(n, width))
            values_b.append(sktopo.cka(X, Y))
            values_u.append(sktopo.cka(X, Y, unbiased=True))
        biased[width], unbiased[width] = np.mean(values_b), np.mean(values_u)
    assert biased[50] > 0.6 and biased[4000] > 0.95
    assert biased[50] < biased[500] < biased[4000]  # the bias grows with the width...
    for width in unbiased:
        assert abs(unbiased[width]) < 0.05  # ... the unbiased estimator has none to grow
    # and with more inputs the biased estimator's bias shrinks (so it IS a bias)
    X, Y = rng.normal(size=(400, 500)), rng.normal(size=(400, 500))
    assert sktopo.cka(X, Y) < biased[500] - 0.2
    assert abs(sktopo.cka(X, Y, unbiased=True)) < 0.02


# -------------------------------------------------------------- minibatch
def test_minibatch_cka_equals_the_minibatch_formula():
    rng = _rng(8)
    X = rng.normal(size=(103, 10))
    Y = np.tanh(X @ rng.normal(size=(10, 30))) + 0.3 * rng.normal(size=(103, 30))
    est = CKA(unbiased=True, batch_size=20, random_state=0).fit([(X, Y)])
    batches = est._plan(103, 0)
    assert len(batches) == 5 and sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert all(len(b) >= 20 for b in batches)
    value = float(est.transform([(X, Y)])[0, 0])
    assert value == pytest.approx(ref_minibatch_cka(X, Y, batches), rel=1e-10)
    # close to the full unbiased CKA, and reproducible with random_state
    assert value == pytest.approx(sktopo.cka(X, Y, unbiased=True), abs=0.1)
    assert value == sktopo.cka(X, Y, unbiased=True, batch_size=20, random_state=0)
    # a batch as large as the inputs is the unbiased CKA
    assert sktopo.cka(X, Y, unbiased=True, batch_size=103) == sktopo.cka(X, Y, unbiased=True)


def test_minibatch_needs_the_unbiased_estimator():
    X = _rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match="unbiased=True"):
        sktopo.cka(X, X, batch_size=10)


# ---------------------------------------------------------- ckatorch
def test_against_ckatorch():
    ckatorch = pytest.importorskip("ckatorch")
    import torch

    for X, Y in PAIRS.values():
        tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
        assert sktopo.cka(X, Y) == pytest.approx(float(ckatorch.cka_base(tx, ty)), rel=1e-9)
        assert sktopo.cka(X, Y, unbiased=True) == pytest.approx(
            float(ckatorch.cka_base(tx, ty, unbiased=True)), rel=1e-8, abs=1e-12)
        # an odd number of inputs: n^2 distances have one middle value (torch.median takes the
        # lower of two, numpy's and Kornblith's their mean)
        tx, ty = tx[:-1], ty[:-1]
        assert sktopo.cka(X[:-1], Y[:-1], kernel="rbf", bandwidth=0.5) == pytest.approx(
            float(ckatorch.cka_base(tx, ty, kernel="rbf", threshold=0.5)), rel=1e-9)
    # minibatch: 6 batches of 20 inputs, as ckatorch.cka_batch takes them
    X, Y = PAIRS["tanh_layer"]
    est = CKA(unbiased=True, batch_size=20, random_state=1).fit([(X, Y)])
    batches = est._plan(120, 1)
    assert {len(b) for b in batches} == {20}
    bx = torch.stack([torch.from_numpy(X[b]) for b in batches])
    by = torch.stack([torch.from_numpy(Y[b]) for b in batches])
    assert float(est.transform([(X, Y)])[0, 0]) == pytest.approx(
        float(ckatorch.cka_batch(bx, by)), rel=1e-9)


# ------------------------------------------------------------- the table
def _layers():
    rng = _rng(9)
    X = rng.normal(size=(80, 6))
    return pd.Series({
        "input": X,
        "hidden": np.tanh(X @ rng.normal(size=(6, 16))),
        "wide": np.maximum(X @ rng.normal(size=(6, 120)), 0),  # wider than the 80 inputs
        "noise": rng.normal(size=(80, 5)),
    }, name="layer").rename_axis("layer")


FUNCTIONS = {
    "cka": sktopo.cka,
    "cka_unbiased": lambda a, b: sktopo.cka(a, b, unbiased=True),
    "cka_rbf": lambda a, b: sktopo.cka(a, b, kernel="rbf"),
    "svcca": sktopo.svcca,
    "pwcca": sktopo.pwcca,
    "procrustes": sktopo.procrustes_distance,
}


def test_table_equals_the_pair_functions():
    layers = _layers()
    other = layers.iloc[[3, 0, 1]] * 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # CCA on the 120-wide layer: too few inputs
        table = sktopo.similarity_table(layers, measures=list(FUNCTIONS))
        cross = sktopo.similarity_table(layers, other, measures=list(FUNCTIONS))
        for name, function in FUNCTIONS.items():
            assert table[name].index.equals(layers.index)
            assert list(table[name].columns) == list(layers.index)
            for a in layers.index:
                for b in layers.index:
                    assert table[name].loc[a, b] == pytest.approx(
                        function(layers[a], layers[b]), abs=1e-10), (name, a, b)
                for b in other.index:
                    assert cross[name].loc[a, b] == pytest.approx(
                        function(layers[a], other[b]), abs=1e-10), (name, a, b)
    assert list(table.columns.names) == ["measure", "layer"]
    assert np.allclose(np.diag(table["cka"]), 1) and np.allclose(np.diag(table["procrustes"]), 0)
    cka_table = table["cka"].to_numpy()
    assert np.array_equal(cka_table, cka_table.T)


def test_table_with_rtd_and_estimators():
    layers = _layers().iloc[[0, 1, 3]]
    rtd = sktopo.RTD(n_trials=2, batch_size=40, random_state=0)
    table = sktopo.similarity_table(layers, measures={"linear": "cka", "rtd": rtd,
                                                      "rbf": CKA(kernel="rbf", bandwidth=0.4)})
    assert list(table.columns.get_level_values(0).unique()) == ["linear", "rtd", "rbf"]
    pd.testing.assert_frame_equal(table["rtd"], sktopo.rtd_table(layers, n_trials=2, batch_size=40,
                                                                random_state=0),
                                  check_names=False)
    assert table["rbf"].loc["input", "hidden"] == pytest.approx(
        sktopo.cka(layers["input"], layers["hidden"], kernel="rbf", bandwidth=0.4))
    single = sktopo.similarity_table(layers)  # one measure: a plain square table
    assert single.shape == (3, 3) and single.index.equals(layers.index)


def test_table_minibatch_matches_the_estimator():
    layers = _layers()
    measure = CKA(unbiased=True, batch_size=16, random_state=3)
    table = sktopo.similarity_table(layers, measures=measure)
    pairs = pd.DataFrame({"a": [layers["input"]], "b": [layers["wide"]]})
    assert table.loc["input", "wide"] == pytest.approx(
        float(clone(measure).fit_transform(pairs)[0, 0]), rel=1e-12)


def test_table_errors():
    layers = _layers()
    with pytest.raises(ValueError, match="unknown measure 'cca'"):
        sktopo.similarity_table(layers, measures="cca")
    with pytest.raises(ValueError, match="both named"):
        sktopo.similarity_table(layers, measures=["cka", CKA()])
    bad = layers.copy()
    bad["noise"] = bad["noise"][:50]
    with pytest.raises(ValueError, match="layer 'noise' of X has 50 inputs.*SAME inputs"):
        sktopo.similarity_table(bad)
    with pytest.raises(TypeError, match="Series, dict or list of clouds"):
        sktopo.similarity_table(layers["input"])
    with pytest.raises(TypeError, match="a measure is a name"):
        sktopo.similarity_table(layers, measures=[sktopo.TwoNN()])


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize("function", [sktopo.cka, sktopo.svcca, sktopo.pwcca,
                                      sktopo.procrustes_distance])
def test_bad_pairs_are_refused_clearly(function):
    rng = _rng(10)
    X = rng.normal(size=(30, 4))
    with pytest.raises(ValueError, match="30 inputs in its first cloud and 29 in its second.*"
                                         "SAME inputs"):
        function(X, X[:29])
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"second cloud\) contains 1 NaN"):
        function(X, Xnan)
    constant = np.ones((30, 5))
    with pytest.raises(ValueError, match="second cloud of the pair at row 0 is constant"):
        function(X, constant)


def test_unbiased_needs_four_inputs():
    X = _rng(0).normal(size=(3, 5))
    with pytest.raises(ValueError, match="at least 4 are needed.*unbiased HSIC"):
        sktopo.cka(X, X, unbiased=True)
    assert sktopo.cka(X, X) == pytest.approx(1.0)


def test_estimators_refuse_what_is_not_pairs():
    X = _rng(0).normal(size=(20, 3))
    with pytest.raises(TypeError, match="expected pairs of clouds"):
        CKA().fit(X)
    with pytest.raises(ValueError, match="item 0 is not a pair"):
        CKA().fit([X, X])
    with pytest.raises(ValueError, match="exactly 2 columns"):
        CKA().fit(pd.DataFrame({"a": [X], "b": [X], "c": [X]}))


def test_too_few_inputs_for_cca_warn():
    rng = _rng(11)
    X, Y = rng.normal(size=(20, 15)), rng.normal(size=(20, 15))
    with pytest.warns(UserWarning, match="at least 11 canonical correlation"):
        value = sktopo.svcca(X, Y, n_components=1.0)
    assert value > 0.5  # high for unrelated layers: the warning is right to warn


def test_extreme_scales():
    X, Y = PAIRS["tanh_layer"]
    reference = sktopo.cka(X, Y)
    for scale in (1e-200, 1e200):
        assert sktopo.cka(scale * X, Y) == pytest.approx(reference, rel=1e-10)
        assert sktopo.procrustes_distance(scale * X, Y) == pytest.approx(
            sktopo.procrustes_distance(X, Y), rel=1e-10)


# --------------------------------------------------- scikit-learn behaviour
def _pair_frame():
    rng = _rng(12)
    rows = {}
    for name, (X, Y) in PAIRS.items():
        rows[name] = (X, Y)
    return pd.DataFrame({"P": [p for p, _ in rows.values()], "Q": [q for _, q in rows.values()]},
                        index=pd.Index(list(rows), name="pair")).assign(
        Q=lambda d: [q + 0.0 * rng.normal() for q in d["Q"]])


ESTIMATORS = [CKA(), CKA(unbiased=True, batch_size=30, random_state=0), CKA(kernel="rbf"),
              SVCCA(), PWCCA(), ProcrustesDistance()]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: repr(e))
def test_pandas_output_and_names(estimator):
    X = _pair_frame()
    out = clone(estimator).set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame) and out.index.equals(X.index)
    assert list(out.columns) == [estimator._column]
    plain = clone(estimator).fit(X).transform(X)
    assert plain.shape == (len(X), 1)
    assert np.allclose(out.to_numpy(), plain)
    assert sktopo.tidy(out).shape[0] > 0


def test_grid_search_over_the_kernel():
    X = _pair_frame()

    def mean_score(estimator, X, y=None):
        return float(np.mean(estimator.transform(X)))

    search = GridSearchCV(CKA(), {"kernel": ["linear", "rbf"], "bandwidth": [0.4, 0.8]},
                          scoring=mean_score, cv=2).fit(X)
    assert set(search.best_params_) == {"kernel", "bandwidth"}
    assert isinstance(search.best_estimator_, CKA)


def test_parameters_are_validated():
    from sklearn.utils._param_validation import InvalidParameterError

    X = _pair_frame()
    with pytest.raises(InvalidParameterError, match="kernel"):
        CKA(kernel="poly").fit(X)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        CKA(unbiased=True, batch_size=3).fit(X)
    with pytest.raises(InvalidParameterError, match="got the bool True"):
        SVCCA(n_components=True).fit(X)
    with pytest.raises(InvalidParameterError, match="n_components"):
        SVCCA(n_components=1.5).fit(X)


# ------------------------------------------------------------------ plot
def test_plot_similarity():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sktopo.plotting import plot_similarity

    layers = _layers().iloc[[0, 1, 3]]
    table = sktopo.similarity_table(layers, measures=["cka", "procrustes"])
    axes = plot_similarity(table)
    assert [a.get_title() for a in axes] == ["cka", "procrustes"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == list(layers.index)
    image = axes[0].images[0]
    assert image.get_clim() == (0.0, 1.0)  # a similarity: 0 to 1
    assert np.allclose(image.get_array(), table["cka"].to_numpy())
    assert len(axes[0].texts) == 9  # values written in the cells
    assert axes[1].images[0].get_cmap().name == "magma_r"  # a distance: dark = far apart
    fig, ax = plt.subplots()
    assert plot_similarity(table, measure="procrustes", ax=ax, annotate=False) is ax
    assert ax.get_title() == "procrustes" and not ax.texts
    with pytest.raises(ValueError, match="no measure 'svcca'"):
        plot_similarity(table, measure="svcca")
    with pytest.raises(ValueError, match="2 measure\\(s\\) to draw but 1 Axes"):
        plot_similarity(table, ax=ax)
    plt.close("all")


# ------------------------------------------------------------ the torch path
def _torch_cases():
    X, Y = PAIRS["tanh_layer"]
    wide = _rng(13).normal(size=(120, 150))  # a Gram-form layer
    return [(X, Y), (X, wide)]


@pytest.mark.parametrize("params", [{}, {"unbiased": True}, {"kernel": "rbf"},
                                    {"kernel": "rbf", "unbiased": True},
                                    {"unbiased": True, "batch_size": 25, "random_state": 0}],
                         ids=repr)
def test_torch_path_gives_the_numpy_numbers(params, monkeypatch):
    # the path that device="cuda" takes, run here on CPU tensors
    pytest.importorskip("torch")
    pairs = _torch_cases()
    expected = CKA(**params).fit_transform(pairs)
    monkeypatch.setattr(CKA, "_torch_device", lambda self: "cpu")
    got = CKA(**params).fit_transform(pairs)
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-13)
    layers = pd.Series({"x": pairs[0][0], "y": pairs[0][1], "wide": pairs[1][1]})
    table = sktopo.similarity_table(layers, measures=CKA(**params))
    assert table.loc["x", "wide"] == pytest.approx(float(expected[1, 0]), rel=1e-10)


def test_device_is_checked_in_fit():
    with pytest.raises(ValueError, match="CKA: device"):
        CKA(device="nonsense").fit([(np.eye(5), np.eye(5))])
    assert CKA(device="auto").fit([(np.eye(5), np.eye(5))]).device_ in ("cpu", "cuda")


@pytest.mark.cuda
def test_cuda_path():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    pairs = _torch_cases()
    for params in ({}, {"unbiased": True}, {"kernel": "rbf"}):
        assert np.allclose(CKA(device="cuda", **params).fit_transform(pairs),
                           CKA(device="cpu", **params).fit_transform(pairs), rtol=1e-9, atol=1e-12)


# -------------------------------------------- the torch path of SVCCA, PWCCA and Procrustes
def _cca_torch_pairs():
    """Random and structured pairs in both orders (PWCCA weights the narrower one), a layer wider
    than the inputs, an orthogonal copy (Procrustes 0), and a pair of few inputs with exactly one
    canonical correlation forced to 1 (12 + 8 directions > 20 - 1: its variate is still
    determined, so PWCCA is too)."""
    rng = _rng(14)
    X = PAIRS["tanh_layer"][0]
    pairs = list(PAIRS.values()) + [(Q, P) for P, Q in PAIRS.values()]
    return pairs + [(X, rng.normal(size=(120, 150))), (X, 2 * X @ _orthogonal(12, rng) + 1),
                    (rng.normal(size=(20, 12)), rng.normal(size=(20, 8)))]


def _many_forced_pair():
    """11 canonical correlations forced to 1 (15 + 15 directions for 20 inputs)."""
    rng = _rng(11)
    return rng.normal(size=(20, 15)), rng.normal(size=(20, 15))


CCA_TORCH_ESTIMATORS = [SVCCA(), SVCCA(n_components=1.0), SVCCA(n_components=3),
                        SVCCA(n_components=0.5), PWCCA(), ProcrustesDistance()]


def _values_and_warnings(estimator, pairs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = clone(estimator).fit_transform(pairs)
    return values, sorted(str(w.message) for w in caught)


@pytest.mark.parametrize("estimator", CCA_TORCH_ESTIMATORS, ids=repr)
def test_cca_and_procrustes_torch_path_gives_the_numpy_numbers(estimator, monkeypatch):
    # the path that device="cuda" takes, run here on CPU tensors
    torch = pytest.importorskip("torch")
    pairs = _cca_torch_pairs()
    if not isinstance(estimator, PWCCA):  # SVCCA and Procrustes do not depend on the variates
        pairs.append(_many_forced_pair())
    numpy_estimator = clone(estimator).set_params(device="cpu")
    expected, expected_warnings = _values_and_warnings(numpy_estimator, pairs)
    monkeypatch.setattr(type(estimator), "_torch_device", lambda self: "cpu")
    got, got_warnings = _values_and_warnings(numpy_estimator, pairs)
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-13)
    assert got_warnings == expected_warnings  # the same directions kept, the same warnings
    fitted = clone(numpy_estimator).fit(pairs[:1])
    form = fitted._form(pairs[0][0], "x", None)
    assert isinstance(getattr(form, "basis", getattr(form, "points", None)), torch.Tensor)
    wide = 2 * len(PAIRS)  # (X, a layer wider than the inputs)
    layers = pd.Series({"x": pairs[wide][0], "tanh": pairs[1][1], "wide": pairs[wide][1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wide layer has more directions than inputs
        table = sktopo.similarity_table(layers, measures=numpy_estimator)
    assert table.loc["x", "wide"] == pytest.approx(float(expected[wide, 0]), rel=1e-9)


def test_cca_torch_path_keeps_the_same_directions():
    torch = pytest.importorskip("torch")
    from sktopo.similarity._cca import cca_form

    rank_deficient = np.c_[PAIRS["tanh_layer"][0], PAIRS["tanh_layer"][0][:, :3] * 2]
    clouds = [cloud for pair in _cca_torch_pairs() for cloud in pair] + [rank_deficient]
    for n_components in (0.99, 0.5, 1.0, 3):
        numpy_k = [cca_form(c, n_components=n_components).basis.shape[1] for c in clouds]
        torch_k = [cca_form(torch.as_tensor(c), n_components=n_components).basis.shape[1]
                   for c in clouds]
        assert torch_k == numpy_k
    assert cca_form(torch.as_tensor(rank_deficient)).basis.shape[1] == 12


def test_pwcca_torch_path_with_many_forced_correlations(monkeypatch):
    # 11 correlations are 1 whatever the data: their canonical variates are any basis of the
    # shared subspace, so their weights depend on the SVD routine (numpy's too); the torch
    # path warns the same and stays a weighted mean of correlations
    pytest.importorskip("torch")
    X, Y = _many_forced_pair()
    with pytest.warns(UserWarning, match="at least 11 canonical correlation"):
        expected = sktopo.pwcca(X, Y, device="cpu")
    monkeypatch.setattr(PWCCA, "_torch_device", lambda self: "cpu")
    with pytest.warns(UserWarning, match="at least 11 canonical correlation"):
        got = sktopo.pwcca(X, Y, device="cpu")
    assert 0 <= got <= 1 and got == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("cls", [SVCCA, PWCCA, ProcrustesDistance])
def test_cca_and_procrustes_device_is_checked_in_fit(cls):
    pairs = [PAIRS["tanh_layer"]]
    with pytest.raises(ValueError, match=f"^{cls.__name__}: device"):
        cls(device="nonsense").fit(pairs)
    with pytest.raises(ValueError, match=f"^{cls.__name__}: device"):
        cls(device="meta").fit_transform(pairs)
    assert cls().fit(pairs).device_ in ("cpu", "cuda")
    assert cls(device="cpu").fit(pairs).device_ == "cpu"
    assert clone(cls(device="cpu")).get_params()["device"] == "cpu"
    function = {SVCCA: sktopo.svcca, PWCCA: sktopo.pwcca,
                ProcrustesDistance: sktopo.procrustes_distance}[cls]
    if cls().fit(pairs).device_ == "cpu":
        assert function(*pairs[0], device="cpu") == function(*pairs[0])
    with pytest.raises(ValueError, match=f"^{cls.__name__}: device"):
        function(*pairs[0], device="nonsense")
    with pytest.raises(ValueError, match=f"^{cls.__name__}: device"):
        sktopo.similarity_table(pd.Series({"a": pairs[0][0], "b": pairs[0][1]}),
                                measures=cls(device="nonsense"))


@pytest.mark.cuda
@pytest.mark.parametrize("estimator", CCA_TORCH_ESTIMATORS, ids=repr)
def test_cca_and_procrustes_cuda_path(estimator):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    pairs = _cca_torch_pairs()
    if not isinstance(estimator, PWCCA):
        pairs.append(_many_forced_pair())
    expected, expected_warnings = _values_and_warnings(clone(estimator).set_params(device="cpu"),
                                                       pairs)
    got, got_warnings = _values_and_warnings(clone(estimator).set_params(device="cuda"), pairs)
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert got_warnings == expected_warnings
