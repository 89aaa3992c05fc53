"""QuotientPersistence (sktopo.nn.quotient) and the ReLURankRegions methods it uses."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sktopo import QuotientPersistence, ReLURankRegions, tidy
from sktopo.datasets import make_circle
from sktopo.nn.quotient import relative_homology_table
from sktopo.nn.random_networks import random_relu_mlp
from sktopo.topology.relative import _distances, quotient_distances, quotient_persistence


def test_circle_h1_survives_a_wide_net_and_dies_in_a_rank_one_net():
    X = 3 * make_circle(80, random_state=0)
    wide = QuotientPersistence(random_relu_mlp(2, [100, 100], 2, random_state=0)).fit(X)
    table = wide.table_
    assert list(table.index) == ["M", "M/A", "f(M)"]
    assert table.loc["M/A", "frac_low_rank"] == 0.0
    assert table.loc["M/A", "H1__n_bars"] == 1 and table.loc["M/A", "H1__max_lifetime"] > 3.5
    assert table.loc["M/A", "H1__bottleneck_to_M"] == 0.0

    narrow = QuotientPersistence(random_relu_mlp(2, [1], 2, random_state=0)).fit(X)
    table = narrow.table_
    assert table.loc["M/A", "frac_low_rank"] == 1.0
    assert table.loc["M/A", "H1__n_bars"] == 0
    # The lost circle is at bottleneck distance half its persistence from M.
    assert table.loc["M/A", "H1__bottleneck_to_M"] == pytest.approx(
        table.loc["M", "H1__max_lifetime"] / 2)
    assert table.loc["f(M)", "H1__n_bars"] == 0  # a 1-D image cannot carry the circle
    assert narrow.in_low_rank_.all() and narrow.quotient_nodes_.max() <= 1


def test_layer_and_collapse_options():
    X = 3 * make_circle(60, random_state=0)
    model = random_relu_mlp(2, [3, 3], 1, random_state=2)
    a = QuotientPersistence(model, layer=0, collapse="all").fit(X)
    b = QuotientPersistence(model, layer="3").fit(X)
    assert a.table_.loc["M/A", "n_points"] <= 60 - a.in_low_rank_.sum() + 1
    assert b.ranks_.layer_names_ == ["1", "3"]
    with pytest.raises(ValueError, match="QuotientPersistence: layer='4' is not a ReLU layer"):
        QuotientPersistence(model, layer="4").fit(X)
    with pytest.raises(ValueError, match="QuotientPersistence: layer=5 is out of range"):
        QuotientPersistence(model, layer=5).fit(X)
    table = relative_homology_table(model, X, homology_dimensions=(1,))
    assert "H1__wasserstein_to_M" in table.columns and "H0__n_bars" not in table.columns


def test_everything_collapsed_to_one_point():
    X = 3 * make_circle(30, random_state=0)
    qp = QuotientPersistence(random_relu_mlp(2, [1], random_state=0), collapse="all").fit(X)
    assert qp.table_.loc["M/A", "n_points"] == 1
    assert qp.table_.loc["M/A", "H0__n_bars"] == 1 and qp.table_.loc["M/A", "H1__n_bars"] == 0




def test_same_numbers_as_the_metric_functions():
    # The estimator = labels from the low-rank regions + quotient_persistence.
    X = 3 * make_circle(50, random_state=1)
    model = random_relu_mlp(2, [4, 4], 2, random_state=1)
    qp = QuotientPersistence(model).fit(X)
    per_input = qp.ranks_.input_table(layer=-1)
    _, labels = np.unique(per_input["region"], return_inverse=True)
    labels = np.where(per_input["low_rank"], labels, -1)
    assert 0 < qp.in_low_rank_.mean() < 1
    assert qp.diagrams_["M/A"] == quotient_persistence(X, labels)
    _, nodes = quotient_distances(_distances(X, "euclidean"), labels)
    np.testing.assert_array_equal(qp.quotient_nodes_, nodes)


def test_pass_through_parameters_are_validated_up_front():
    # rank_tol=-1 used to be accepted (the inner validation was skipped) with every region
    # coming out full rank.
    X = 3 * make_circle(20, random_state=0)
    model = random_relu_mlp(2, [3], 2, random_state=0)
    for params, match in [
        ({"rank_tol": -1.0}, "'rank_tol' parameter of QuotientPersistence"),
        ({"dtype": "float16"}, "QuotientPersistence.*dtype"),
        ({"low_rank": -1}, "'low_rank' parameter of QuotientPersistence"),
        ({"batch_size": 0}, "'batch_size' parameter of QuotientPersistence"),
        ({"n_landmarks": 1}, "'n_landmarks' parameter of QuotientPersistence"),
        ({"verbose": -1}, "'verbose' parameter of QuotientPersistence"),
        ({"homology_dimensions": (1, 1)}, "QuotientPersistence: homology_dimensions has rep"),
        ({"homology_dimensions": (-1,)}, "QuotientPersistence: homology_dimensions must be"),
        ({"device": "meta"}, "QuotientPersistence: device='meta'"),
    ]:
        with pytest.raises(ValueError, match=match):
            QuotientPersistence(model, **params).fit(X)
    with pytest.raises(TypeError, match="QuotientPersistence: model must be a torch.nn.Module"):
        QuotientPersistence("not a model").fit(X)


def test_rank_tol_reaches_the_rank_engine():
    X = 3 * make_circle(40, random_state=0)
    model = random_relu_mlp(2, [8, 8], 2, random_state=0)
    default = QuotientPersistence(model).fit(X)
    huge = QuotientPersistence(model, rank_tol=1e6).fit(X)
    assert default.in_low_rank_.mean() < 1 and huge.in_low_rank_.all()


def test_table_columns_parse_with_tidy_like_diagram_features():
    X = 3 * make_circle(40, random_state=0)
    qp = QuotientPersistence(random_relu_mlp(2, [4], 2, random_state=0)).fit(X)
    table = qp.table_
    long = tidy(table)
    with_dim = long.dropna(subset=["homology_dimension"])
    assert set(with_dim["feature"]) == {"n_bars", "max_lifetime", "bottleneck_to_M",
                                        "wasserstein_to_M"}
    assert set(long.loc[long["homology_dimension"].isna(), "feature"]) == {
        "n_points", "frac_low_rank"}
    for column in table.columns:
        if column.startswith("H"):
            assert column.split("__")[0] in ("H0", "H1")
    # same names and values as DiagramFeatures on the same diagrams
    from sktopo import DiagramFeatures

    features = DiagramFeatures(features=["n_bars", "max_lifetime"]).set_output(
        transform="pandas").fit_transform(qp.diagrams_)
    for column in features.columns:
        np.testing.assert_allclose(table[column].to_numpy(), features[column].to_numpy())


def test_public_rank_methods_replace_column_offsets():
    X = np.random.default_rng(0).uniform(-3, 3, size=(60, 3))
    model = random_relu_mlp(3, [5, 4], 2, random_state=0)
    ranks = ReLURankRegions(model)
    features = ranks.set_output(transform="pandas").fit_transform(X)
    assert ranks.resolve_layer() == "3" and ranks.resolve_layer(0) == "1"
    assert ranks.resolve_layer(-2) == "1" and ranks.resolve_layer("3") == "3"
    for layer in ("1", "3"):
        table = ranks.input_table(layer=layer)
        assert table.attrs["layer"] == layer
        for feature in ("rank", "active", "kernel_dim", "region"):
            np.testing.assert_array_equal(table[feature], features[f"{layer}__{feature}"])
        np.testing.assert_array_equal(table["low_rank"], table["rank"] < 3)
        # on new inputs, indexed like them
        frame = pd.DataFrame(X[:7], index=list("abcdefg"))
        ranks_df = ReLURankRegions(model).fit(pd.DataFrame(X))
        new = ranks_df.input_table(frame, layer=layer)
        assert list(new.index) == list("abcdefg")
        np.testing.assert_array_equal(new["rank"], table["rank"].to_numpy()[:7])
    with pytest.raises(ValueError, match="layer='7' is not a ReLU layer"):
        ranks.resolve_layer("7")
    with pytest.raises(ValueError, match="out of range"):
        ranks.input_table(layer=2)
    with torch.no_grad():
        want = model.double()(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(ranks.network_output(X), want, rtol=1e-12)


def jacobian_rank(f, x):
    jac = torch.autograd.functional.jacobian(f, torch.as_tensor(x, dtype=torch.float64))
    return np.linalg.matrix_rank(jac.numpy())


def test_output_relu_treats_the_output_layer_as_a_relu():
    # Study B's knot notebook: the output Linear layer counts as a ReLU layer for A.
    X = 3 * make_circle(60, random_state=0)
    model = random_relu_mlp(2, [10, 10], 2, random_state=3).double()
    qp = QuotientPersistence(model, output_relu=True).fit(X)
    assert qp.ranks_.layer_names_ == ["model.1", "model.3", "output"]
    assert qp.layer_ == "output"
    ranks = qp.ranks_.input_table()["rank"].to_numpy()
    # brute force: float64 Jacobian of relu(model(x)) at each input
    want = [jacobian_rank(lambda z: torch.relu(model(z)), x) for x in X]
    np.testing.assert_array_equal(ranks, want)
    np.testing.assert_array_equal(qp.in_low_rank_, np.asarray(want) < 2)
    # f(M) is the model's own output, not its ReLU
    plain = QuotientPersistence(model).fit(X)
    assert qp.diagrams_["f(M)"] == plain.diagrams_["f(M)"]
    assert qp.in_low_rank_.sum() >= plain.in_low_rank_.sum()
    # the model's own layer names still work, and the user's model is untouched
    inner = QuotientPersistence(model, output_relu=True, layer="3").fit(X)
    np.testing.assert_array_equal(inner.in_low_rank_, plain.in_low_rank_)
    assert isinstance(model[-1], nn.Linear) and len(model) == 5


def test_low_rank_level_is_a_parameter():
    # Study B: a curve is 1-dimensional; a rank-1 region is low rank at level 2 (the input
    # dimension) but not at level 1 (the data manifold's dimension).
    X = 3 * make_circle(40, random_state=0)
    model = random_relu_mlp(2, [1], 1, random_state=0)
    assert QuotientPersistence(model).fit(X).in_low_rank_.all()
    level1 = QuotientPersistence(model, low_rank=1).fit(X)
    ranks = level1.ranks_.input_table()["rank"].to_numpy()
    np.testing.assert_array_equal(level1.in_low_rank_, ranks < 1)


def test_normalize_divides_by_the_largest_finite_value():
    X = 3 * make_circle(50, random_state=0)
    model = random_relu_mlp(2, [8, 8], 2, random_state=0)
    raw = QuotientPersistence(model).fit(X)
    norm = QuotientPersistence(model, normalize=True).fit(X)
    for space in ("M", "M/A", "f(M)"):
        a, b = raw.diagrams_[space], norm.diagrams_[space]
        values = np.concatenate([a[q].ravel() for q in a.dims])
        scale = values[np.isfinite(values)].max()
        for q in a.dims:
            np.testing.assert_allclose(b[q], a[q] / scale)
        finite = np.concatenate([b[q].ravel() for q in b.dims])
        assert finite[np.isfinite(finite)].max() == pytest.approx(1.0)
    # the table's distances are those of the normalised diagrams
    from sktopo import diagram_distance

    assert norm.table_.loc["f(M)", "H1__bottleneck_to_M"] == pytest.approx(diagram_distance(
        norm.diagrams_["f(M)"], norm.diagrams_["M"], metric="bottleneck", q=1))


def test_landmarks_fallback_is_seeded():
    X = 3 * make_circle(120, random_state=0)
    model = random_relu_mlp(2, [20, 20], 2, random_state=0)
    a = QuotientPersistence(model, n_landmarks=40, random_state=0).fit(X)
    b = QuotientPersistence(model, n_landmarks=40, random_state=0).fit(X)
    assert all(a.diagrams_[s] == b.diagrams_[s] for s in a.diagrams_.index)
    assert a.diagrams_["M"].n_landmarks == 40 and len(a.diagrams_["M"][0]) == 40
    assert a.table_.loc["M", "n_points"] == 120
