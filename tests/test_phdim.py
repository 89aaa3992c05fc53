"""PHDimension: the engine against ripser, the formula for any alpha, accuracy on manifolds of
known dimension, seeding across n_jobs, presets, pandas output and bad clouds."""

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from ripser import ripser
from sklearn.base import clone

import sktopo
from sktopo import PHDimension, ph_dimension
from sktopo.datasets import make_closed_curve, make_sphere, make_torus
from sktopo.dimension._protocols import PRESETS, make_plan
from sktopo.dimension.phdim import FEATURES, _draw_subsets, _length_sums, _length_sums_torch


def _plan(n, **kw):
    params = dict(protocol=None, min_points=40, max_points=None, n_sizes=4, n_draws=2, n_reruns=2)
    params.update(kw)
    return make_plan(n, **params)


def _ripser_total(X, alpha):
    bars = ripser(X, maxdim=0)["dgms"][0]
    deaths = bars[np.isfinite(bars[:, 1]), 1]
    return float(np.sum(deaths ** alpha))


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_length_sums_equal_ripser_h0_total_persistence(rng, alpha):
    X = rng.normal(size=(160, 4))
    plan = _plan(len(X))
    E = _length_sums(X, plan, np.random.default_rng(7), alpha=alpha, metric="euclidean",
                     device="cpu", label="row 0")
    # the same subsamples, drawn again from the same seed
    jobs = _draw_subsets(plan, np.random.default_rng(7))
    checked = 0
    for order, targets in jobs:
        for r, s, k, m in targets:
            assert E[r, s, k] == pytest.approx(_ripser_total(X[order[:m]], alpha), rel=1e-5)
            checked += 1
    assert checked == plan.n_reruns * plan.n_draws * (len(plan.sizes) - 1)
    # the largest size is the whole cloud
    assert np.all(E[:, -1, :] == pytest.approx(_ripser_total(X, alpha), rel=1e-5))


def test_independent_subsamples_of_presets_equal_ripser(rng):
    X = rng.normal(size=(260, 3))
    plan = make_plan(len(X), protocol="tulchinskii", min_points=None, max_points=None,
                     n_sizes=None, n_draws=None, n_reruns=None)
    assert not plan.nested
    E = _length_sums(X, plan, np.random.default_rng(3), alpha=1.0, metric="euclidean",
                     device="cpu", label="row 0")
    order, [(r, s, k, m)] = _draw_subsets(plan, np.random.default_rng(3))[5]
    assert E[r, s, k] == pytest.approx(_ripser_total(X[order], 1.0), rel=1e-5)


def test_torch_engine_matches_numpy_engine(rng):
    pytest.importorskip("torch")
    X = rng.normal(size=(150, 5))
    plan = _plan(len(X))
    E_np = _length_sums(X, plan, np.random.default_rng(1), alpha=1.5, metric="euclidean",
                        device="cpu", label="row 0")
    rng_t = np.random.default_rng(1)
    jobs = _draw_subsets(plan, rng_t)
    E_t = np.empty_like(E_np)
    _length_sums_torch(X - X.mean(axis=0), plan, jobs, E_t, alpha=1.5, metric="euclidean",
                       device="cpu")
    np.testing.assert_allclose(E_t, E_np, rtol=1e-5)


def test_batched_torch_prim_matches_numpy_prim_with_ties_and_inf(rng):
    torch = pytest.importorskip("torch")
    from sktopo._distance import pairwise_distances
    from sktopo._mst import mst_edge_lengths, torch_batched_mst_edge_lengths

    grid = np.array([[i, j] for i in range(6) for j in range(6)], float)
    Ds = np.stack([pairwise_distances(rng.normal(size=(36, 3))), pairwise_distances(grid)])
    got = torch_batched_mst_edge_lengths(torch.tensor(Ds)).numpy()
    np.testing.assert_allclose(np.sort(got, axis=1), np.sort(mst_edge_lengths(Ds), axis=1))
    D = np.array([[0, 1, np.inf], [1, 0, np.inf], [np.inf, np.inf, 0]])
    assert torch.isinf(torch_batched_mst_edge_lengths(torch.tensor(D)[None])).sum() == 1


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_cpu_numbers():
    X = make_sphere(1200, 2, random_state=0)
    cpu = ph_dimension(X, random_state=0)
    gpu = ph_dimension(X, random_state=0, device="cuda")
    np.testing.assert_allclose(gpu.to_numpy(), cpu.to_numpy(), rtol=1e-3, atol=1e-3)


def test_formula_is_right_for_alpha_2_and_half():
    X = make_sphere(1500, 2, random_state=3)
    for alpha in (0.5, 2.0):
        result = ph_dimension(X, alpha=alpha, random_state=0)
        # study A's alpha / (alpha - m) would give about 4/3 for alpha = 2
        assert result["phdim"] == pytest.approx(2.0, abs=0.2), (alpha, result["phdim"])


def test_small_sphere_default_and_output_layout():
    X = make_sphere(800, 2, random_state=0)
    result = ph_dimension(X, random_state=0)
    assert list(result.index) == ["phdim", "phdim_std", "phdim_ci_low", "phdim_ci_high",
                                  "phdim_r2", "phdim_n_min", "phdim_n_max", "phdim_n_sizes",
                                  "phdim_reliable"]
    assert result["phdim"] == pytest.approx(2.0, abs=0.2)
    assert result["phdim_ci_low"] < result["phdim"] < result["phdim_ci_high"]
    assert result["phdim_std"] > 0 and result["phdim_r2"] > 0.99
    assert (result["phdim_n_min"], result["phdim_n_max"], result["phdim_n_sizes"]) == (100, 800, 4)


def test_200_point_cloud_works_with_defaults():
    result = ph_dimension(make_sphere(200, 1, random_state=0), random_state=0)
    assert result["phdim_n_max"] == 200 and result["phdim_n_min"] == 25
    assert result["phdim"] == pytest.approx(1.0, abs=0.2)


@pytest.mark.slow
@pytest.mark.parametrize("name, make, truth, tol", [
    ("2-sphere", lambda s: make_sphere(2500, 2, random_state=s), 2, 0.15),
    ("torus in R^3", lambda s: make_torus(2500, random_state=s), 2, 0.15),
    ("closed curve in R^30", lambda s: make_closed_curve(2500, ambient_dim=30, random_state=s), 1, 0.15),
    ("3-sphere in R^20", lambda s: make_sphere(2500, 3, ambient_dim=20, random_state=s), 3, 0.3),
])
def test_accuracy_on_closed_manifolds(name, make, truth, tol):
    for seed in range(2):
        result = ph_dimension(make(seed), random_state=seed)
        assert result["phdim"] == pytest.approx(truth, abs=tol), (name, seed, result["phdim"])


def test_same_seed_same_numbers_on_any_n_jobs():
    clouds = [make_sphere(300, 1 + i % 2, random_state=i) for i in range(3)]
    one = PHDimension(random_state=5, n_jobs=1).fit_transform(clouds)
    two = PHDimension(random_state=5, n_jobs=2).fit_transform(clouds)
    np.testing.assert_array_equal(one, two)
    again = PHDimension(random_state=5).fit_transform(clouds)
    np.testing.assert_array_equal(one, again)
    other = PHDimension(random_state=6).fit_transform(clouds)
    assert not np.array_equal(one, other)
    # n_jobs=None takes its worker count from a joblib context
    with joblib.parallel_config(backend="threading", n_jobs=2):
        np.testing.assert_array_equal(one, PHDimension(random_state=5).fit_transform(clouds))


def test_random_state_instance_is_accepted():
    clouds = [make_sphere(200, 1, random_state=0)]
    a = PHDimension(random_state=np.random.RandomState(0)).fit_transform(clouds)
    b = PHDimension(random_state=np.random.RandomState(0)).fit_transform(clouds)
    np.testing.assert_array_equal(a, b)


def test_set_output_pandas_frame_and_series():
    clouds = [make_sphere(200, 1, random_state=i) for i in range(4)]
    frame = pd.DataFrame({"conv1": clouds[:2], "fc": clouds[2:]},
                         index=pd.Index(["img_a", "img_b"], name="sample"))
    est = PHDimension(random_state=0).set_output(transform="pandas")
    out = est.fit_transform(frame)
    assert list(out.columns[:2]) == ["conv1__phdim", "conv1__phdim_std"]
    assert "fc__phdim" in out.columns and out.shape == (2, 2 * len(FEATURES))
    assert out.index.equals(frame.index)
    series = pd.Series(clouds, index=pd.Index(list("abcd"), name="layer"))
    out = est.fit_transform(series)
    assert list(out.columns) == list(PHDimension()._cell_names()) and out.index.equals(series.index)
    with pytest.raises(ValueError, match="columns"):
        PHDimension().fit(frame).transform(frame.rename(columns={"fc": "other"}))


def test_one_cloud_function_under_global_pandas_output():
    X = make_sphere(300, 1, random_state=0)
    expected = ph_dimension(X, random_state=0)
    with sklearn.config_context(transform_output="pandas"):
        result = ph_dimension(X, random_state=0)
    pd.testing.assert_series_equal(result, expected)


def test_bare_array_is_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"sktopo\.ph_dimension\(X\)"):
        PHDimension().fit_transform(make_sphere(100, 1))


def test_clone_and_params():
    est = PHDimension(alpha=2.0, n_reruns=3, random_state=1)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    with pytest.raises(ValueError):
        PHDimension(alpha=0.0).fit([make_sphere(100, 1)])
    with pytest.raises(ValueError, match="min_points"):
        PHDimension(min_points=500, max_points=100).fit([make_sphere(100, 1)])


def test_presets_reproduce_published_sizes():
    X = make_sphere(1600, 2, random_state=0)
    out = {name: ph_dimension(X, protocol=name, random_state=0) for name in PRESETS}
    assert (out["birdal"]["phdim_n_min"], out["birdal"]["phdim_n_max"], out["birdal"]["phdim_n_sizes"]) == (200, 950, 16)
    assert (out["tulchinskii"]["phdim_n_min"], out["tulchinskii"]["phdim_n_max"],
            out["tulchinskii"]["phdim_n_sizes"]) == (50, 490, 12)
    assert (out["study_a"]["phdim_n_min"], out["study_a"]["phdim_n_max"]) == (500, 1550)
    plan = make_plan(1600, protocol="tulchinskii", min_points=None, max_points=None,
                     n_sizes=None, n_draws=None, n_reruns=None)
    assert (plan.n_draws, plan.n_reruns) == (7, 3)
    for name, result in out.items():
        if name != "study_a":  # two sizes only: too noisy for a tight bound
            assert result["phdim"] == pytest.approx(2.0, abs=0.3), name


def test_preset_conflicts_raise():
    with pytest.raises(ValueError, match="protocol='birdal' fixes"):
        PHDimension(protocol="birdal", n_draws=3).fit([make_sphere(100, 1)])


def test_preset_drops_sizes_larger_than_the_cloud_with_a_warning():
    with pytest.warns(UserWarning, match=r"row 0 .*sizes \[650, 700"):
        result = ph_dimension(make_sphere(600, 2, random_state=0), protocol="birdal", random_state=0)
    assert result["phdim_n_max"] == 600


def test_precomputed_distances_give_the_same_numbers():
    from sktopo._distance import pairwise_distances

    X = make_sphere(300, 2, random_state=0)
    direct = ph_dimension(X, random_state=0)
    pre = ph_dimension(pairwise_distances(X), metric="precomputed", random_state=0)
    np.testing.assert_allclose(pre.to_numpy(), direct.to_numpy(), rtol=1e-5)


def test_other_metric():
    X = make_sphere(400, 1, random_state=0)
    assert ph_dimension(X, metric="manhattan", random_state=0)["phdim"] == pytest.approx(1, abs=0.15)


def test_max_points_pools_large_clouds():
    X = make_sphere(3000, 1, random_state=0)
    result = ph_dimension(X, max_points=400, random_state=0)
    assert result["phdim_n_max"] == 400 and result["phdim_n_min"] == 50


# ------------------------------------------------------------------------ bad clouds


def _row_values(clouds, **params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = PHDimension(random_state=0, **params).fit_transform(clouds)
    assert not np.isinf(table).any()
    return table, [str(w.message) for w in caught]


def test_duplicated_points_warn_and_stay_finite():
    X = make_sphere(300, 2, random_state=0)
    X = np.vstack([X, X[:30]])
    table, messages = _row_values(pd.Series([X], index=["conv1"]))
    assert any("row 'conv1'" in m and "30 duplicated point(s)" in m for m in messages)
    assert np.isfinite(table[0, 0])


def test_constant_and_tiny_clouds_give_nan_with_a_warning_naming_the_row():
    good = make_sphere(200, 1, random_state=0)
    clouds = pd.Series([good, np.ones((50, 3)), good[:4]], index=["ok", "flat", "tiny"])
    table, messages = _row_values(clouds)
    assert np.isfinite(table[0]).all()
    assert np.isnan(table[1, 0]) and np.isnan(table[2, 0])
    assert any("row 'flat'" in m and "constant" in m for m in messages)
    assert any("row 'tiny'" in m and "4 points" in m for m in messages)


def test_cloud_smaller_than_smallest_subsample():
    table, messages = _row_values([make_sphere(60, 1, random_state=0)], min_points=100, max_points=500)
    assert np.isnan(table[0, 0])
    assert any("row 0" in m and "smallest subsample is 100" in m for m in messages)


def test_mostly_duplicated_cloud_is_nan_or_finite_never_inf():
    X = np.repeat(make_sphere(5, 1, random_state=0), 40, axis=0)
    table, messages = _row_values([X])
    assert messages


def test_lazy_public_names():
    assert sktopo.PHDimension is PHDimension and sktopo.ph_dimension is ph_dimension


# ------------------------------------------------------------ one seeding rule (issue 9.1)
def test_same_cloud_same_numbers_in_any_row_order_or_subset():
    clouds = [make_sphere(300, 2, random_state=s) for s in range(3)]
    est = PHDimension(random_state=0)
    table = est.fit_transform(clouds)
    np.testing.assert_array_equal(est.fit_transform(clouds[::-1]), table[::-1])
    np.testing.assert_array_equal(est.fit_transform([clouds[2]]), table[[2]])
    twice = est.fit_transform([clouds[1], clouds[0], clouds[1]])
    np.testing.assert_array_equal(twice[0], twice[2])
    np.testing.assert_array_equal(twice[0], table[1])


def test_cloud_and_its_distance_matrix_draw_the_same_pool_and_subsamples():
    from sktopo._distance import pairwise_distances

    X = make_sphere(700, 2, random_state=1)
    # max_points < n: a random pool is drawn first, then random subsamples of it
    direct = ph_dimension(X, max_points=300, n_draws=2, random_state=5)
    pre = ph_dimension(pairwise_distances(X), metric="precomputed", max_points=300, n_draws=2,
                       random_state=5)
    np.testing.assert_allclose(pre.to_numpy(), direct.to_numpy(), rtol=1e-5)


def test_many_too_small_clouds_give_one_summary_warning():
    rng = np.random.default_rng(0)
    clouds = pd.Series([rng.normal(size=(5, 3)) for _ in range(30)] + [make_sphere(300, 2, random_state=0)],
                       index=[f"token_{i}" for i in range(31)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = PHDimension(random_state=0).fit_transform(clouds)
    messages = [str(w.message) for w in caught if "too few points" in str(w.message)]
    assert len(messages) == 1, messages
    assert "30 of 31 clouds" in messages[0] and "row 'token_0'" in messages[0]
    assert "and 20 more" in messages[0] and "lower min_points" in messages[0]
    assert np.isnan(table[:30]).all() and np.isfinite(table[30, 0])
    # one cloud alone keeps its own, detailed message
    with pytest.warns(UserWarning, match=r"the cloud at row 0 has 5 points, too few"):
        PHDimension(random_state=0).fit_transform([clouds.iloc[0]])


# ------------------------------------------------------ "tulchinskii" preset (issue 9.8)
def _tulchinskii_reference(X, rng):
    """A transcription of Tulchinskii et al.'s PHD (GPTID, IntrinsicDim.py) with alpha = 1.

    Per rerun (3), per size n in range(50, 512, 40): 3 draws if the cloud has at most 2 n
    points, else 7; the median of their MST lengths (cdist + an MST); their closed-form
    least-squares slope of log(median) on log(n); phdim = 1 / (1 - mean slope). The draws come
    from ``rng`` in their loop order (rerun, size, draw), as sktopo draws them.
    """
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial import distance

    slopes = []
    sizes = list(range(50, 512, 40))
    for _ in range(3):
        lengths = []
        for n in sizes:
            restarts = 3 if X.shape[0] <= 2 * n else 7
            draws = []
            for _ in range(restarts):
                sample = X[np.sort(rng.choice(X.shape[0], n, replace=False))]
                draws.append(minimum_spanning_tree(distance.cdist(sample, sample)).sum())
            lengths.append(np.median(draws))
        x, y = np.log(sizes), np.log(lengths)
        N = len(x)
        slopes.append((N * (x * y).sum() - x.sum() * y.sum()) / (N * (x ** 2).sum() - x.sum() ** 2))
    return 1 / (1 - np.mean(slopes))


def test_tulchinskii_preset_matches_a_transcription_of_their_code():
    from sktopo._seeding import cloud_seeds

    X = make_sphere(600, 2, random_state=4)  # < 980 points: 3 draws at sizes 330..490
    plan = make_plan(len(X), protocol="tulchinskii", min_points=None, max_points=None,
                     n_sizes=None, n_draws=None, n_reruns=None)
    assert plan.draws == (7,) * 7 + (3,) * 5
    jobs = _draw_subsets(plan, np.random.default_rng(0))
    assert len(jobs) == 3 * (7 * 7 + 5 * 3)
    got = ph_dimension(X, protocol="tulchinskii", random_state=11)["phdim"]
    seed = cloud_seeds(11, [X])[0]
    expected = _tulchinskii_reference(X, np.random.default_rng(seed))
    assert got == pytest.approx(expected, rel=1e-5)
    # a cloud of 1000 points takes 7 draws at every size
    assert make_plan(1000, protocol="tulchinskii", min_points=None, max_points=None,
                     n_sizes=None, n_draws=None, n_reruns=None).draws == (7,) * 12


def test_pad_draws_keeps_the_median_of_the_used_draws():
    plan = make_plan(600, protocol="tulchinskii", min_points=None, max_points=None,
                     n_sizes=None, n_draws=None, n_reruns=None)
    E = np.random.default_rng(0).uniform(size=(3, len(plan.sizes), 7))
    expected = [np.median(E[:, s, :plan.draws_at(s)], axis=-1) for s in range(len(plan.sizes))]
    padded = plan.pad_draws(E.copy())
    for s in range(len(plan.sizes)):
        np.testing.assert_array_equal(np.median(padded[:, s], axis=-1), expected[s])
