import re

import numpy as np
import pandas as pd
import pytest

from sktopo._collections import check_collection


def clouds(rng, k=3, n=10, d=2):
    return [rng.normal(size=(n, d)) for _ in range(k)]


def test_list_array_series_frame(rng):
    cs = clouds(rng)
    c = check_collection(cs)
    assert (c.kind, c.n_rows, c.n_cols) == ("list", 3, 1)
    c = check_collection(np.stack(cs))
    assert (c.kind, c.n_rows) == ("array", 3)
    s = pd.Series(cs, index=pd.Index(["a", "b", "c"], name="layer"), name="emb")
    c = check_collection(s)
    assert c.kind == "series" and list(c.row_index) == ["a", "b", "c"]
    out = c.rebuild(["x", "y", "z"])
    assert isinstance(out, pd.Series) and out.index.name == "layer" and out.name == "emb"
    df = pd.DataFrame({"l1": cs, "l2": cs[::-1]}, index=pd.Index([10, 11, 12], name="sample"))
    c = check_collection(df)
    assert (c.n_rows, c.n_cols) == (3, 2)
    assert c.cell_label(1, 1) == "row 11, column 'l2'"
    np.testing.assert_array_equal(c.cells[0][1], cs[2])
    out = c.rebuild(list(range(6)))
    assert out.loc[12, "l2"] == 5 and out.index.name == "sample"
    assert list(c.feature_names(["f", "g"])) == ["l1__f", "l1__g", "l2__f", "l2__g"]
    table = c.stack_features([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]])
    assert table.shape == (3, 4) and table[1].tolist() == [5, 6, 7, 8]


def test_bare_2d_array_refused_with_hint(rng):
    with pytest.raises(ValueError, match=r"\[X\].*sktopo.persistence\(X\)"):
        check_collection(rng.normal(size=(5, 2)), one_cloud="sktopo.persistence(X)")


@pytest.mark.parametrize(
    "bad, match",
    [
        ([np.array([[0.0, np.nan], [1, 1]])], "row 0 contains 1 NaN"),
        ([np.array([[0.0, 1], [np.inf, 1]])], "row 0 contains 0 NaN and 1 infinite"),
        ([np.empty((0, 2))], "row 0 is empty"),
        ([[[0, 1], [1]]], "row 0 is ragged"),
        ([np.array([["a", "b"]])], "row 0 is not numeric"),
        ([np.zeros(3)], "row 0 has 1 dimension"),
        ([], "collection is empty"),
    ],
)
def test_bad_cells(bad, match):
    with pytest.raises(ValueError, match=match):
        check_collection(bad)


def test_min_points_and_labels_in_series():
    s = pd.Series([np.zeros((3, 2)), np.zeros((1, 2))], index=["ok", "tiny"])
    with pytest.raises(ValueError, match="row 'tiny' has 1 point"):
        check_collection(s, min_points=2)


def test_tensors_accepted(rng):
    torch = pytest.importorskip("torch")
    c = check_collection(torch.zeros(2, 4, 3))
    assert c.n_rows == 2 and c.cells[0][0].shape == (4, 3) and c.cells[0][0].dtype == np.float64


def test_distance_cells():
    D = np.array([[0, 1.0], [1, 0]])
    c = check_collection([D], cell="distance")
    assert c.cells[0][0].shape == (2, 2)
    with pytest.raises(ValueError, match="not symmetric"):
        check_collection([np.array([[0, 1.0], [2, 0]])], cell="distance")
    with pytest.raises(ValueError, match="square"):
        check_collection([np.zeros((2, 3))], cell="distance")


@pytest.mark.parametrize(
    "cell, match",
    [
        (np.float64(3.0), "square"),  # a scalar cell: was an IndexError
        (np.array([[0, np.nan], [np.nan, 0]]), "NaN"),
        (np.array([[0.5, 1.0], [1.0, 0]]), r"non-zero diagonal.*point 0"),
    ],
)
def test_bad_distance_cells_name_the_row(cell, match):
    s = pd.Series([np.array([[0, 1.0], [1, 0]]), cell], index=["ok", "bad"])
    with pytest.raises(ValueError, match=match) as info:
        check_collection(s, cell="distance")
    assert "row 'bad'" in str(info.value)


def test_distance_cells_may_be_infinite():
    D = np.array([[0, np.inf], [np.inf, 0]])
    assert np.isinf(check_collection([D], cell="distance").cells[0][0]).sum() == 2


def test_feature_names_of_multiindex_columns_match_diagram_transformers():
    from sktopo import Diagram, DiagramFeatures

    columns = pd.MultiIndex.from_tuples([("mlp", "fc1"), ("mlp", "fc2")])
    clouds = pd.DataFrame([[np.zeros((2, 1)), np.ones((2, 1))]], columns=columns)
    names = check_collection(clouds).feature_names(["phdim"])
    assert list(names) == ["mlp/fc1__phdim", "mlp/fc2__phdim"]
    diagrams = pd.DataFrame([[Diagram({0: [[0, 1]]}), Diagram({0: [[0, 2]]})]], columns=columns)
    features = DiagramFeatures(features=["n_bars"]).fit(diagrams).get_feature_names_out()
    assert list(features) == ["mlp/fc1__H0__n_bars", "mlp/fc2__H0__n_bars"]


@pytest.mark.parametrize("cell, match", [
    (np.ones((4, 2), dtype=complex), "has complex values"),
    (np.array([[1 + 2j, 0], [1, 1]], dtype=object), "has complex values"),
    (np.array([["1.5", "2"], ["3", "4"]]), "is not numeric: it holds text"),
    (np.array([[b"1", b"2"], [b"3", b"4"]]), "is not numeric: it holds text"),
    (np.array([["1.5", 2.0], [3.0, 4.0]], dtype=object), "is not numeric: it holds text"),
])
def test_complex_and_text_clouds_are_refused_naming_the_row(cell, match):
    with pytest.raises(ValueError, match=f"Est: the cloud at row 1 {match}"):
        check_collection([np.ones((4, 2)), cell], estimator="Est")
    with pytest.raises(ValueError, match=f"the distance matrix at row 0 {match}"):
        check_collection([np.zeros((2, 2), dtype=cell.dtype)
                          if cell.dtype != object else cell[:, :2]], cell="distance")


def test_every_cloud_estimator_refuses_complex_input():
    import warnings

    import sktopo

    cloud = np.random.default_rng(0).normal(size=(30, 3)) * (1 + 1j)
    for est in (sktopo.PersistenceDiagram(), sktopo.PHDimension(), sktopo.TwoNN()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ComplexWarning on the way
            with pytest.raises(ValueError, match="complex values"):
                est.fit_transform([cloud])


def test_masked_clouds_are_refused_saying_to_drop_the_masked_points():
    import sktopo

    rng = np.random.default_rng(0)
    cloud = np.ma.masked_array(rng.normal(size=(40, 3)))
    cloud[5, 1] = np.ma.masked
    cloud[9] = np.ma.masked
    # np.asarray drops the mask: the masked values were read as numbers (TwoNN gave 3.94)
    with pytest.raises(ValueError, match=r"TwoNN: the cloud at row 1 is a numpy masked array "
                                         r"with 4 masked value\(s\) in 2 point\(s\) \(first at "
                                         r"point 5\).*Drop the masked points"):
        sktopo.TwoNN().fit_transform([rng.normal(size=(40, 3)), cloud])
    with pytest.raises(ValueError, match=r"the cloud at row 0 is a numpy masked array"):
        check_collection(np.ma.stack([cloud, cloud]))
    with pytest.raises(ValueError, match=r"the distance matrix at row 0 is a numpy masked array"):
        check_collection([np.ma.masked_equal(np.ones((3, 3)) - np.eye(3), 0)], cell="distance")
    # nothing masked: nothing lost, accepted
    whole = np.ma.masked_array(rng.normal(size=(5, 2)))
    np.testing.assert_array_equal(check_collection([whole]).cells[0][0], whole.data)


@pytest.mark.parametrize("cell", [
    np.arange(8).reshape(4, 2).astype("datetime64[D]"),
    np.arange(8).reshape(4, 2).astype("timedelta64[s]"),
])
def test_date_and_duration_clouds_are_refused(cell):
    # they were read as counts of their unit (days since 1970 for datetime64[D])
    with pytest.raises(ValueError, match=r"Est: the cloud at row 1 holds dates or durations "
                                         rf"\({re.escape(f'dtype {cell.dtype}')}\).*Convert them"):
        check_collection([np.ones((4, 2)), cell], estimator="Est")
    with pytest.raises(ValueError, match="the distance matrix at row 0 holds dates or durations"):
        check_collection([cell[:2]], cell="distance")


def test_complex_sparse_precomputed_matrices_are_refused():
    import warnings

    import scipy.sparse as sp

    import sktopo

    D = sp.csr_matrix(np.array([[0, 1 + 1j, 2], [1 + 1j, 0, 1], [2, 1, 0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with pytest.raises(ValueError, match=r"PersistenceDiagram: the cell at row 0 has complex "
                                             r"values \(dtype complex128\)"):
            sktopo.PersistenceDiagram(metric="precomputed").fit_transform([D])
