"""set_output / set_config pandas output, index preservation and FeatureUnion alignment."""

import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.pipeline import FeatureUnion, make_union

from sktopo import (BettiCurve, Diagram, DiagramDistance, DiagramFeatures, PersistenceImage,
                    PersistenceLandscape)

INF = np.inf

TRANSFORMERS = [
    DiagramFeatures(betti_scales=[0.5]),
    BettiCurve(n_bins=4),
    PersistenceImage(resolution=(3, 2)),
    PersistenceLandscape(n_layers=2, n_bins=4),
    DiagramDistance(),
    DiagramDistance("sliced_wasserstein_kernel"),
]


def _diagram(rng):
    bars1 = np.sort(rng.uniform(0, 2, size=(rng.integers(0, 4), 2)), axis=1)
    bars0 = np.c_[np.zeros(5), np.r_[rng.uniform(0.1, 1, 4), INF]]
    return Diagram({0: bars0, 1: bars1})


@pytest.fixture
def series(rng):
    # a deliberately unsorted, named index: outputs must keep it as it is
    index = pd.Index(["conv3", "conv1", "fc", "conv2"], name="layer")
    return pd.Series([_diagram(rng) for _ in index], index=index, name="diagrams")


@pytest.fixture
def frame(rng):
    index = pd.MultiIndex.from_tuples([(7, "a"), (3, "b"), (5, "c")], names=["sample", "tag"])
    return pd.DataFrame({"conv1": [_diagram(rng) for _ in range(3)],
                         "fc": [_diagram(rng) for _ in range(3)]}, index=index)


@pytest.mark.parametrize("est", TRANSFORMERS, ids=lambda e: type(e).__name__)
def test_set_output_pandas_keeps_series_index(est, series):
    plain = clone(est).fit_transform(series)
    est = clone(est).set_output(transform="pandas")
    out = est.fit_transform(series)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(series.index) and out.index.name == "layer"
    assert list(out.columns) == list(est.get_feature_names_out())
    again = est.transform(series)
    pd.testing.assert_frame_equal(again, out, atol=1e-10)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_allclose(plain, out.to_numpy())


@pytest.mark.parametrize("est", TRANSFORMERS, ids=lambda e: type(e).__name__)
def test_set_config_pandas_keeps_frame_multiindex(est, frame):
    with sklearn.config_context(transform_output="pandas"):
        est = clone(est).fit(frame)
        out = est.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index) and list(out.index.names) == ["sample", "tag"]
    n = len(est.get_feature_names_out()) // 2
    assert all(c.startswith("conv1__") for c in out.columns[:n])
    assert all(c.startswith("fc__") for c in out.columns[n:])
    # each source's block equals the transformer run on that column alone; scales
    # (grids, image ranges) are learned over every fitted cell, so fit on all of them
    fit_on = frame["fc"] if isinstance(est, DiagramDistance) else pd.concat([frame["conv1"], frame["fc"]])
    alone = clone(est).set_output(transform="pandas").fit(fit_on).transform(frame["fc"])
    np.testing.assert_allclose(out.iloc[:, n:].to_numpy(), alone.to_numpy())


def test_list_input_gets_range_index(rng):
    diagrams = [_diagram(rng) for _ in range(3)]
    out = DiagramFeatures().set_output(transform="pandas").fit_transform(diagrams)
    assert out.index.equals(pd.RangeIndex(3))


def test_feature_union_lines_up_rows(series):
    union = FeatureUnion([
        ("summary", DiagramFeatures(features=["n_bars", "total_persistence"], p=1)),
        ("curve", BettiCurve(n_bins=3)),
    ]).set_output(transform="pandas")
    out = union.fit_transform(series)
    assert out.index.equals(series.index)
    assert out.columns[0] == "summary__H0__n_bars"
    assert out.columns[-1] == "curve__H1__betti_2"
    # row by row: each row equals the branch run on that row's diagram alone
    for label in series.index:
        summary = DiagramFeatures(features=["n_bars", "total_persistence"], p=1).fit(series)
        row = summary.transform(series.loc[[label]])[0]
        np.testing.assert_allclose(out.loc[label, [c for c in out.columns if c.startswith("summary__")]],
                                   row)
    # a shuffled input gives the same rows under the same labels
    shuffled = union.transform(series.iloc[::-1])
    pd.testing.assert_frame_equal(shuffled.loc[out.index], out)


def test_feature_union_with_set_config(frame):
    with sklearn.config_context(transform_output="pandas"):
        out = make_union(DiagramFeatures(), PersistenceLandscape(n_bins=5)).fit_transform(frame)
    assert out.index.equals(frame.index)
    assert out.columns[0] == "diagramfeatures__conv1__H0__n_bars"
    assert not out.isna().any().any()


def test_clone_pickle_and_params(series):
    for est in TRANSFORMERS:
        fitted = clone(est).fit(series)
        restored = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_allclose(restored.transform(series), fitted.transform(series))
        assert clone(est).get_params() == est.get_params()
        params = est.get_params()
        assert "homology_dimensions" in params


def test_pipeline_from_clouds(rng):
    """PersistenceDiagram -> FeatureUnion of two branches, pandas output end to end."""
    from sklearn.pipeline import make_pipeline

    from sktopo import PersistenceDiagram, tidy

    clouds = pd.Series([rng.normal(size=(30, 2)) for _ in range(3)],
                       index=pd.Index(["l1", "l2", "l3"], name="layer"))
    pipe = make_pipeline(PersistenceDiagram(homology_dimensions=(0, 1)),
                         make_union(DiagramFeatures(), BettiCurve(n_bins=4)))
    out = pipe.set_output(transform="pandas").fit_transform(clouds)
    assert out.index.equals(clouds.index)
    assert out.columns[0] == "diagramfeatures__H0__n_bars"
    assert (out["diagramfeatures__H0__n_bars"] == 30).all()
    long = tidy(out)
    assert set(long["source"]) == {"diagramfeatures", "bettICurve".lower()}
    assert set(long["unit"]) == {"l1", "l2", "l3"}


@pytest.mark.parametrize("est", TRANSFORMERS, ids=lambda e: type(e).__name__)
def test_sklearn_parameter_checks(est):
    """The scikit-learn checks that apply to estimators taking Diagram cells (the others feed 2-D arrays)."""
    from sklearn.utils.estimator_checks import (check_estimator_repr, check_get_params_invariance,
                                                check_no_attributes_set_in_init,
                                                check_parameters_default_constructible,
                                                check_set_params)

    name = type(est).__name__
    for check in (check_no_attributes_set_in_init, check_parameters_default_constructible,
                  check_get_params_invariance, check_set_params, check_estimator_repr):
        check(name, clone(est))


def test_fit_does_not_change_parameters(series):
    for est in TRANSFORMERS:
        before = clone(est).get_params()
        fitted = clone(est).fit(series)
        assert fitted.get_params() == before
