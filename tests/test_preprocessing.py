"""CloudScaler: each cloud scaled by its own statistics, a collection -> collection step."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import minmax_scale, scale

from sktopo import CloudScaler, DiagramFeatures, PersistenceDiagram
from sktopo.datasets import make_circle


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"fc1": [rng.normal(size=(30, 4)) * 5 + 2 for _ in range(3)],
         "fc2": [rng.uniform(size=(20, 3)) * 100 for _ in range(3)]},
        index=pd.Index(["x", "y", "z"], name="input"),
    )


@pytest.mark.parametrize("method, reference", [("minmax", minmax_scale), ("standard", scale)])
def test_each_cloud_by_its_own_statistics(frame, method, reference):
    out = CloudScaler(method).fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index) and out.columns.equals(frame.columns)
    for i in range(3):
        for column in frame.columns:
            np.testing.assert_allclose(out[column].iloc[i], reference(frame[column].iloc[i]),
                                       atol=1e-12)
    # the same cloud gives the same scaled cloud in any collection (nothing learned in fit)
    alone = CloudScaler(method).fit(frame).transform([frame["fc1"].iloc[2]])
    np.testing.assert_array_equal(alone[0], out["fc1"].iloc[2])


def test_constant_coordinates_become_zero_and_containers_follow_the_input():
    cloud = np.column_stack([np.arange(5.0), np.full(5, 7.0)])
    for method in ("minmax", "standard"):
        out = CloudScaler(method).fit_transform(np.stack([cloud, 2 * cloud]))
        assert isinstance(out, list) and len(out) == 2
        assert np.all(out[0][:, 1] == 0) and np.isfinite(out[1]).all()
    series = pd.Series([cloud], index=["layer"], name="clouds")
    out = CloudScaler().fit_transform(series)
    assert isinstance(out, pd.Series) and out.name == "clouds" and list(out.index) == ["layer"]
    listed = CloudScaler().set_output(transform="pandas").fit_transform([cloud, cloud])
    assert isinstance(listed, pd.Series) and list(listed.index) == [0, 1]


def test_in_a_pipeline_before_persistence_as_study_a_does():
    clouds = pd.Series({"small": make_circle(40, random_state=0) * 1e-3,
                        "large": make_circle(40, random_state=0) * 1e3})
    pipe = make_pipeline(CloudScaler(), PersistenceDiagram((0, 1)), DiagramFeatures())
    table = pipe.set_output(transform="pandas").fit_transform(clouds)
    # the same circle at two scales: identical features once each cloud is min-max scaled
    np.testing.assert_allclose(table.loc["small"], table.loc["large"], rtol=1e-9)
    assert clone(pipe).fit_transform(clouds).shape == table.shape


def test_bad_input_and_parameters():
    with pytest.raises(ValueError, match="CloudScaler: got a single 2-D array"):
        CloudScaler().fit(np.ones((5, 2)))
    with pytest.raises(ValueError, match="method"):
        CloudScaler("robust").fit([np.ones((5, 2))])
    with pytest.raises(ValueError, match="CloudScaler: the cloud at row 1 contains 1 NaN"):
        CloudScaler().fit_transform([np.ones((3, 2)), np.array([[0.0, np.nan], [1, 1]])])


@pytest.mark.parametrize("method", ["minmax", "standard"])
@pytest.mark.parametrize("scale", [1e160, 1e-170, 1e300, 2.0**-1000])
def test_extreme_scales_scale_like_unit_clouds(method, scale):
    # squares of 1e160 overflow (the cloud collapsed to a point) and of 1e-170
    # underflow (the cloud came back unscaled): a power of two first, exactly
    cloud = make_circle(50, random_state=0) + [3.0, -1.0]
    unit = CloudScaler(method).fit_transform([cloud])[0]
    out = CloudScaler(method).fit_transform([cloud * scale])[0]
    np.testing.assert_allclose(out, unit, rtol=1e-12, atol=1e-12)
    assert len(PersistenceDiagram((0,)).fit_transform([out])[0].finite(0)) == 49


def test_columns_at_different_extreme_scales_and_near_the_largest_float():
    # each column gets its own power of two; spreads past the largest float (min -1.5e308,
    # max 1.5e308) gave NaN in "minmax"
    cloud = np.array([[-1.5e308, 1e-200], [1.5e308, 3e-200], [0.0, 2e-200]])
    np.testing.assert_allclose(CloudScaler("minmax").fit_transform([cloud])[0],
                               [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]], atol=1e-15)
    np.testing.assert_allclose(CloudScaler("standard").fit_transform([cloud])[0],
                               scale(np.array([[-1.5, 1], [1.5, 3], [0, 2]])), atol=1e-15)
    # a cloud that is already in range is left bit for bit as before
    plain = make_circle(20, random_state=1)
    low = plain.min(axis=0)
    np.testing.assert_array_equal(CloudScaler().fit_transform([plain])[0],
                                  (plain - low) / (plain.max(axis=0) - low))
