"""Study A's local mode: split_by_label and mean_over_labels, checked against its own recipe."""

import numpy as np
import pandas as pd
import pytest
from ripser import ripser
from scipy.spatial import distance_matrix
from sklearn.preprocessing import MinMaxScaler, minmax_scale

from sktopo import DiagramFeatures, PersistenceDiagram
from sktopo.datasets import load_digits
from sktopo.local import mean_over_labels, split_by_label


def _study_a_local_lifespans(X, y, hom_dim, per_class):
    """Study A's code path, written out: MinMax over the layer, first points of classes 0-8,
    half the total finite bar length (alpha = 1), mean over the classes."""
    X = MinMaxScaler().fit_transform(X)
    values = []
    for c in range(9):
        rows = [e for e, label in enumerate(y) if label == c][:per_class]
        dgm = ripser(distance_matrix(X[rows], X[rows]), maxdim=hom_dim, distance_matrix=True)["dgms"][hom_dim]
        finite = dgm[np.isfinite(dgm).all(axis=1)]
        values.append(0.5 * np.sum(finite[:, 1] - finite[:, 0]))
    return np.mean(values)


def test_recipe_reproduces_study_a():
    X, y = load_digits()
    X, y = X[:600], y[:600]
    rng = np.random.default_rng(0)
    clouds = pd.Series({"pixels": X, "projected": X @ rng.normal(size=(64, 10))}).rename_axis("layer")
    local = split_by_label(clouds.map(minmax_scale), y, classes=range(9), max_points=40, sample="first")
    assert local.index.names == ["layer", "label"] and len(local) == 18
    diagrams = PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(local)
    table = DiagramFeatures(features=["total_persistence"], p=(1,)) \
        .set_output(transform="pandas").fit_transform(diagrams)
    lifespans = 0.5 * mean_over_labels(table)
    assert list(lifespans.index) == ["pixels", "projected"]
    for layer in clouds.index:
        for q in (0, 1):
            expected = _study_a_local_lifespans(clouds[layer], y, q, 40)
            assert lifespans.loc[layer, f"H{q}__total_persistence_p1"] == pytest.approx(expected, rel=1e-5)


def test_random_subsets_are_seeded_and_shared_by_every_cloud():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 30)
    a = rng.normal(size=(90, 3))
    frame = pd.DataFrame({"before": [a, 2 * a], "after": [a + 1, a]}, index=["l1", "l2"])
    first = split_by_label(frame, y, max_points=10, random_state=0)
    again = split_by_label(frame, y, max_points=10, random_state=0)
    other = split_by_label(frame, y, max_points=10, random_state=1)
    assert list(first.columns) == ["before", "after"]
    assert first.index.tolist() == [(r, c) for r in ("l1", "l2") for c in (0, 1, 2)]
    for key in first.index:
        np.testing.assert_array_equal(first.loc[key, "before"], again.loc[key, "before"])
        # the same inputs in every cloud: the second row's 'before' is twice the first's
        np.testing.assert_array_equal(first.loc[(key[1:] and ("l2",) + key[1:]), "before"],
                                      2 * first.loc[("l1",) + key[1:], "before"])
        assert first.loc[key, "before"].shape == (10, 3)
    assert not np.array_equal(first.loc[("l1", 0), "before"], other.loc[("l1", 0), "before"])
    # keeping fewer classes leaves a class's points unchanged
    fewer = split_by_label(frame, y, classes=[2], max_points=10, random_state=0)
    np.testing.assert_array_equal(fewer.loc[("l1", 2), "after"], first.loc[("l1", 2), "after"])


def test_list_input_and_mean_over_labels():
    clouds = [np.arange(8.0).reshape(4, 2)]
    local = split_by_label(clouds, ["b", "a", "b", "a"])
    assert local.index.tolist() == [(0, "a"), (0, "b")]
    np.testing.assert_array_equal(local[(0, "a")], [[2, 3], [6, 7]])
    assert mean_over_labels(pd.Series([1.0, 3.0], index=local.index)).tolist() == [2.0]


def test_errors_name_the_problem():
    a = np.zeros((4, 2))
    with pytest.raises(ValueError, match="has 4 points but there are 3 labels"):
        split_by_label([a], [0, 1, 0])
    with pytest.raises(ValueError, match="class 1 has 1 input"):
        split_by_label([a], [0, 1, 0, 0])
    with pytest.raises(ValueError, match="sample must be"):
        split_by_label([a], [0, 0, 1, 1], sample="last")
    with pytest.raises(ValueError, match="no index level 'label'"):
        mean_over_labels(pd.DataFrame({"x": [1.0]}))


def test_mean_over_labels_propagates_nan():
    # pandas' mean skips NaN: [2, NaN, 4] averaged to 3.0, hiding a class without a value
    index = pd.MultiIndex.from_tuples([("fc1", 0), ("fc1", 1), ("fc1", 2), ("fc2", 0), ("fc2", 1)],
                                      names=["layer", "label"])
    table = pd.DataFrame({"a": [2.0, np.nan, 4.0, 1.0, 3.0], "b": [1.0, 2.0, 3.0, np.nan, 5.0]},
                         index=index)
    mean = mean_over_labels(table)
    assert np.isnan(mean.loc["fc1", "a"]) and mean.loc["fc2", "a"] == 2.0
    assert mean.loc["fc1", "b"] == 2.0 and np.isnan(mean.loc["fc2", "b"])
    series = mean_over_labels(table["a"])
    assert np.isnan(series["fc1"]) and series["fc2"] == 2.0
    only = mean_over_labels(pd.Series([2.0, np.nan, 4.0], index=pd.Index([0, 1, 2], name="label")))
    assert np.isnan(only)


@pytest.mark.parametrize("labels", [[0, 1, 0, 1, np.nan, 1], [0, 1, 0, 1, None, 1],
                                    pd.Series([0, 1, 0, 1, None, 1], dtype="Int64")])
def test_missing_labels_are_refused_naming_the_input(labels):
    # they made a class 'nan' with 0 inputs, or a raw TypeError from sorting None
    with pytest.raises(ValueError, match=r"split_by_label: 1 label\(s\) are missing \(NaN or "
                                         r"None\), first at input 4.*drop those inputs"):
        split_by_label([np.arange(12.0).reshape(6, 2)], labels)


@pytest.mark.parametrize("labels", [[0, 1, 0, 1, "a", "a"],
                                    np.array([0, 1, 0, 1, "a", "a"], dtype=object),
                                    pd.Series([0, 1, 0, 1, "a", "a"])])
def test_labels_mixing_numbers_and_text_are_refused(labels):
    # a list became text ('0', '1', 'a'); object arrays and Series gave a raw TypeError
    with pytest.raises(ValueError, match=r"split_by_label: the labels mix types \(int, str\).*"
                                         r"one type"):
        split_by_label([np.arange(12.0).reshape(6, 2)], labels)


def test_classes_listed_twice_are_refused():
    with pytest.raises(ValueError, match=r"split_by_label: classes lists 1 more than once"):
        split_by_label([np.arange(12.0).reshape(6, 2)], [0, 1, 0, 1, 1, 0], classes=[1, 0, 1])
