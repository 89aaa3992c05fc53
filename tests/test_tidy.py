"""sktopo.tidy: long form of feature tables, name parsing, round trips."""

import numpy as np
import pandas as pd
import pytest

import sktopo
from sktopo import BettiCurve, Diagram, DiagramFeatures
from sktopo.tidy import parse_feature_name

INF = np.inf


@pytest.mark.parametrize("name,expected", [
    ("H0__n_bars", (None, 0, "n_bars")),
    ("conv1__H12__betti_3", ("conv1", 12, "betti_3")),
    ("layer.3__phdim", ("layer.3", None, "phdim")),
    ("phdim", (None, None, "phdim")),
    ("union__conv1__H1__image_0_2", ("union__conv1", 1, "image_0_2")),
    ("H1", (None, None, "H1")),             # a lone H{q} is a feature, not a dimension
    ("mlp/fc1__H2", ("mlp/fc1", None, "H2")),
    ("H1__H0__x", ("H1", 0, "x")),          # the last H{q} before the feature wins
])
def test_parse_feature_name(name, expected):
    assert parse_feature_name(name) == expected


def _diagrams():
    a = Diagram({0: [[0, 1], [0, INF]], 1: [[0.2, 0.5]]})
    b = Diagram({0: [[0, 2], [0, 3], [0, INF]], 1: []})
    return a, b


def test_tidy_frame_output_round_trip():
    a, b = _diagrams()
    frame = pd.DataFrame({"conv1": [a, b], "fc": [b, a]}, index=pd.Index(["x", "y"], name="image"))
    wide = DiagramFeatures().set_output(transform="pandas").fit_transform(frame)
    long = sktopo.tidy(wide)
    assert list(long.columns) == ["unit", "source", "homology_dimension", "feature", "value"]
    assert len(long) == wide.size
    assert str(long["homology_dimension"].dtype) == "Int64"
    first = long.iloc[0]
    assert (first["unit"], first["source"], first["homology_dimension"], first["feature"]) == (
        "x", "conv1", 0, "n_bars")
    assert first["value"] == 2.0
    # back to wide: pivot on the parsed parts and rebuild the names
    names = (long["source"] + "__H" + long["homology_dimension"].astype(str) + "__" + long["feature"])
    back = long.assign(name=names).pivot(index="unit", columns="name", values="value")
    back = back.loc[wide.index, wide.columns]
    np.testing.assert_array_equal(back.to_numpy(), wide.to_numpy())


def test_tidy_array_with_names_or_estimator():
    a, b = _diagrams()
    est = BettiCurve(n_bins=3)
    table = est.fit_transform([a, b])
    by_names = sktopo.tidy(table, est.get_feature_names_out())
    by_estimator = sktopo.tidy(table, est)
    pd.testing.assert_frame_equal(by_names, by_estimator)
    assert list(by_names["unit"].unique()) == [0, 1]
    assert by_names["source"].isna().all()
    assert set(by_names["homology_dimension"]) == {0, 1}
    value = by_names.query("unit == 1 and homology_dimension == 0 and feature == 'betti_0'")["value"]
    assert value.item() == table[1, 0]
    labelled = sktopo.tidy(table, est, index=["u", "v"])
    assert list(labelled["unit"].unique()) == ["u", "v"]


def test_tidy_multiindex_and_features_without_dimension():
    index = pd.MultiIndex.from_tuples([("mlp", "fc1"), ("cnn", "conv1")], names=["model", "layer"])
    wide = pd.DataFrame({"phdim": [2.0, 3.5], "H0__n_bars": [10, 12]}, index=index)
    long = sktopo.tidy(wide)
    assert list(long.columns) == ["model", "layer", "source", "homology_dimension", "feature", "value"]
    assert list(long["model"]) == ["mlp", "mlp", "cnn", "cnn"]
    assert long["homology_dimension"].isna().tolist() == [True, False, True, False]
    unnamed = wide.rename_axis([None, None])
    assert list(sktopo.tidy(unnamed).columns[:2]) == ["level_0", "level_1"]
    with pytest.raises(ValueError, match="clashes"):
        sktopo.tidy(wide.rename_axis(["model", "feature"]))


def test_tidy_series_and_bad_inputs():
    s = pd.Series([1.0, 2.0], index=["a", "b"], name="conv1__phdim")
    long = sktopo.tidy(s)
    assert list(long["source"]) == ["conv1", "conv1"] and list(long["feature"]) == ["phdim"] * 2
    with pytest.raises(ValueError, match="feature_names"):
        sktopo.tidy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 column"):
        sktopo.tidy(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="index"):
        sktopo.tidy(np.zeros((2, 1)), ["a"], index=[1, 2, 3])
    with pytest.raises(ValueError, match="non-numeric"):
        sktopo.tidy(pd.DataFrame({"a": ["x", "y"]}))


def test_sktopo_tidy_is_the_function_whatever_was_imported_first():
    """Issue 23, item 12: no callable-module trick; ``sktopo.tidy`` is the function even in a
    process that imports the submodule first."""
    import subprocess
    import sys
    import types

    module = sys.modules["sktopo.tidy"]
    assert type(module) is types.ModuleType and not callable(module)
    assert sktopo.tidy is module.tidy
    code = ("import sktopo.tidy, sktopo, types\n"
            "import pandas as pd\n"
            "assert isinstance(sktopo.tidy, types.FunctionType), sktopo.tidy\n"
            "long = sktopo.tidy(pd.DataFrame({'H0__a': [1.0]}))\n"
            "assert long['homology_dimension'].iloc[0] == 0\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_feature_names_parse_the_same_whatever_was_imported():
    """Issue 23, item 12: a static list of prefixes; the parse does not change when an
    estimator's module is imported."""
    import subprocess
    import sys

    code = ("from sktopo.tidy import parse_feature_name as p\n"
            "names = ['H1__mle_std', 'H0__twonn_ml_r2', 'H1__phdim', 'H2__mle']\n"
            "before = [p(n) for n in names]\n"
            "import sktopo.dimension.mle, sktopo.dimension.phdim, sktopo.dimension.twonn\n"
            "after = [p(n) for n in names]\n"
            "print(before == after, before)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == ("True [('H1', None, 'mle_std'), ('H0', None, 'twonn_ml_r2'), "
                   "('H1', None, 'phdim'), ('H2', None, 'mle')]")


def test_every_cloud_estimator_prefix_is_in_the_static_list():
    import importlib
    import pkgutil

    from sktopo._base import CloudTransformer
    from sktopo.tidy import DIMENSIONLESS_PREFIXES

    for info in pkgutil.walk_packages(sktopo.__path__, "sktopo."):
        if not info.name.startswith(("sktopo.cli", "sktopo.__main__", "sktopo.plotting")):
            importlib.import_module(info.name)
    stack, prefixes = list(CloudTransformer.__subclasses__()), set()
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if getattr(cls, "_prefix", ""):
            prefixes.add(cls._prefix)
    assert {"phdim", "twonn", "mle", "twonn_ml"} <= prefixes
    assert prefixes <= set(DIMENSIONLESS_PREFIXES)


# ------------------------------------------- every table the library emits (issues 9.4, 11.6, 11.8d)
def _layer_frame():
    """Clouds of two layers, one of them named like a homology dimension."""
    from sktopo.datasets import make_circle

    clouds = {"H1": [make_circle(40, noise=0.05, random_state=i) for i in range(3)],
              "conv1": [2 * make_circle(40, noise=0.05, random_state=10 + i) for i in range(3)]}
    return pd.DataFrame(clouds, index=pd.Index(["a", "b", "c"], name="image"))


def _emitted_tables():
    """(name, wide DataFrame, expected (source, homology_dimension) pairs) for every estimator."""
    import torch
    from collections import OrderedDict

    from sktopo import (DiagramDistance, PersistenceDiagram, PersistenceImage,
                        PersistenceLandscape, PHDimension, QuotientPersistence, ReLURankRegions,
                        TwoNN)

    frame = _layer_frame()
    diagrams = PersistenceDiagram((0, 1)).fit_transform(frame)
    layers = ["H1", "conv1"]
    with_dims = {(layer, q) for layer in layers for q in (0, 1)}
    without = {(layer, None) for layer in layers}
    tables = []
    for est in (DiagramFeatures(), BettiCurve(n_bins=4), PersistenceImage(resolution=(2, 2)),
                PersistenceLandscape(n_layers=2, n_bins=3)):
        tables.append((type(est).__name__, est.set_output(transform="pandas").fit_transform(diagrams),
                       with_dims))
    tables.append(("DiagramDistance", DiagramDistance().set_output(transform="pandas")
                   .fit_transform(diagrams), without))
    tables.append(("PHDimension", PHDimension(random_state=0).set_output(transform="pandas")
                   .fit_transform(frame), without))
    tables.append(("TwoNN", TwoNN().set_output(transform="pandas").fit_transform(frame), without))

    torch.manual_seed(0)
    model = torch.nn.Sequential(OrderedDict([
        ("fc", torch.nn.Linear(2, 6)), ("H1", torch.nn.ReLU()), ("out", torch.nn.Linear(6, 2))]))
    X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    ranks = ReLURankRegions(model, device="cpu").set_output(transform="pandas").fit_transform(X)
    tables.append(("ReLURankRegions", ranks, {("H1", None)}))
    from sktopo.datasets import make_circle

    quotient = QuotientPersistence(model, device="cpu", random_state=0).fit(
        3 * make_circle(40, random_state=0)).table_
    tables.append(("QuotientPersistence.table_", quotient, {(None, None), (None, 0), (None, 1)}))
    return tables


def test_tidy_parses_every_table_the_library_emits():
    from sktopo.tidy import feature_name

    for name, wide, expected in _emitted_tables():
        long = sktopo.tidy(wide)
        assert len(long) == wide.size, name
        found = {(s, None if pd.isna(q) else int(q))
                 for s, q in zip(long["source"], long["homology_dimension"])}
        # no row lost its homology dimension, and the layer "H1" stayed a source
        assert found == expected, (name, found)
        # every name round-trips: parse, then build back
        for column in wide.columns:
            assert feature_name(*parse_feature_name(column)) == column, (name, column)


@pytest.mark.parametrize("name, expected", [
    ("H1__phdim", ("H1", None, "phdim")),             # a layer named H1 stays a source
    ("H1__twonn_r2", ("H1", None, "twonn_r2")),
    ("H1__H0__n_bars", ("H1", 0, "n_bars")),
    ("H2__bottleneck_distance_to_H1", ("H2", None, "bottleneck_distance_to_H1")),
    ("union__H1__phdim_std", ("union__H1", None, "phdim_std")),
])
def test_sources_that_look_like_dimensions_survive(name, expected):
    assert parse_feature_name(name) == expected
    long = sktopo.tidy(pd.DataFrame({name: [1.0]}))
    assert long.loc[0, "source"] == expected[0]
    assert pd.isna(long.loc[0, "homology_dimension"]) == (expected[1] is None)


def test_every_emitted_name_round_trips_with_any_source():
    """Property-style: sources that look like dimensions, MultiIndex-like labels and every
    feature the estimators emit parse back to the parts they were built from."""
    from sktopo.tidy import feature_name

    names = [parse_feature_name(c)[1:] for _, wide, _ in _emitted_tables() for c in wide.columns]
    parts = {(q, feature) for q, feature in names}
    rng = np.random.default_rng(0)
    sources = [None, "H0", "H1", "H12", "conv1", "mlp/fc1", "layer.3", "union__H2", "0"]
    for q, feature in parts:
        for source in rng.choice(np.array(sources, dtype=object), size=4, replace=False):
            name = feature_name(source, q, feature)
            assert parse_feature_name(name) == (source, q, feature), name


def test_similarity_columns_of_a_layer_named_like_a_dimension_keep_their_source():
    from sktopo.tidy import parse_feature_name

    for feature in ("cka", "svcca", "pwcca", "procrustes_distance"):
        assert parse_feature_name(f"H1__{feature}") == ("H1", None, feature)
