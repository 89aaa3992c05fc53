"""scikit-learn's estimator checks, on every sktopo estimator they apply to.

sktopo estimators take *collections* (of clouds, of diagrams, or a model plus
inputs), not 2-D tabular ``X``. Most of ``sklearn.utils.estimator_checks``
feeds random 2-D float arrays and so does not apply; which checks run, and why
the others are left out:

Run on every estimator (they need no data):
    check_no_attributes_set_in_init, check_parameters_default_constructible,
    check_get_params_invariance, check_set_params, check_estimator_repr,
    check_estimator_cloneable, check_do_not_raise_errors_in_init_or_set_params,
    check_valid_tag_types, check_estimator_tags_renamed, check_mixin_order,
    check_param_validation (invalid parameters are refused in ``fit`` before
    ``X`` is looked at, so the 2-D ``X`` it feeds does not matter).

Re-implemented here on valid collections (the sklearn versions build 2-D
``X``): fit returns self, ``fit`` does not change parameters
(check_dont_overwrite_parameters, check_estimators_overwrite_params),
``fit`` is idempotent (check_fit_idempotent), pickling keeps the output
(check_estimators_pickle), transform before fit raises NotFittedError
(check_estimators_unfitted), and the output does not depend on the order of
the other rows (check_methods_sample_order_invariance).

Left out, because they feed 2-D tabular ``X`` or assume one vector per sample:
check_transformer_general, check_transformers_unfitted_stateless,
check_fit2d_*, check_fit1d, check_estimators_dtypes, check_estimators_nan_inf
(bad values are tested with collections in the estimators' own tests),
check_estimators_empty_data_messages, check_n_features_in*,
check_dataframe_column_names_consistency (a DataFrame's columns are sources of
clouds, not features), check_transformer_preserve_dtypes (outputs are Diagram
objects or float tables), check_transformer_get_feature_names_out*,
check_set_output_transform* and check_global_output_transform_pandas (tested
with collections in the estimators' own tests), sparse, complex, memmap and
array-API checks, sample-weight and supervised/classifier/regressor checks (no
sktopo estimator takes sample weights or predicts).
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec

import sktopo
from sktopo.datasets import make_circle

NO_DATA_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_repr",
    "check_estimator_cloneable",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_valid_tag_types",
    "check_estimator_tags_renamed",
    "check_mixin_order",
    "check_param_validation",
]


def _tiny_relu_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _estimator_instances():
    """One default instance per sktopo estimator (models given where required)."""
    out = []
    for name in sktopo.__all__:
        obj = getattr(sktopo, name)
        if not (isinstance(obj, type) and issubclass(obj, BaseEstimator)):
            continue
        if name == "LayerEmbedder":
            est = obj(_tiny_relu_model(), layers="1")
        elif name == "CheckpointEmbedder":
            est = obj(sktopo.LayerEmbedder(_tiny_relu_model(), layers="1"),
                      [_tiny_relu_model().state_dict()])
        elif name in ("ReLURankRegions", "QuotientPersistence"):
            est = obj(_tiny_relu_model())
        else:
            est = obj()
        out.append(est)
    return out


INSTANCES = _estimator_instances()

# the "tulchinskii" case uses clouds smaller than its largest sizes on purpose (fast)
pytestmark = pytest.mark.filterwarnings("ignore:PHDimension.*protocol 'tulchinskii':UserWarning")


def _id(est):
    return type(est).__name__


@pytest.mark.parametrize("estimator", INSTANCES, ids=_id)
@pytest.mark.parametrize("check_name", NO_DATA_CHECKS)
def test_sklearn_check(estimator, check_name):
    check = getattr(ec, check_name, None)
    if check is None:  # pragma: no cover - older scikit-learn
        pytest.skip(f"{check_name} not in this scikit-learn")
    if check_name == "check_param_validation" and not hasattr(estimator, "_parameter_constraints"):
        pytest.skip("no _parameter_constraints")
    check(type(estimator).__name__, clone(estimator))


# ---------------------------------------------------- checks on collections
def _clouds():
    return pd.Series(
        [make_circle(60, noise=0.05, random_state=i) for i in range(4)],
        index=pd.Index(list("abcd"), name="layer"),
    )


def _big_clouds():
    return pd.Series(
        [make_circle(140, noise=0.05, random_state=i) for i in range(4)],
        index=pd.Index(list("abcd"), name="layer"),
    )


def _diagrams():
    return sktopo.PersistenceDiagram().fit_transform(_clouds())


def _pairs():
    """A DataFrame of pairs: two representations of the same 60 inputs per row."""
    clouds = _clouds()
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"before": list(clouds.values),
         "after": [np.tanh(c @ rng.normal(size=(2, 5))) for c in clouds.values]},
        index=clouds.index,
    )


def _collection_cases():
    """(estimator, X) pairs for the estimators whose input can be made here."""
    cases = [(sktopo.PersistenceDiagram(), _clouds),
             (sktopo.PersistenceDiagram((0,), n_landmarks=20, random_state=0), _clouds),
             (sktopo.PHDimension(random_state=0), _clouds),
             (sktopo.PHDimension(protocol="tulchinskii", random_state=0), _big_clouds),
             (sktopo.TwoNN(max_points=40, random_state=0), _clouds),
             (sktopo.CloudScaler(), _clouds),
             (sktopo.GeodesicDistances(), _clouds)]
    for name in ("DiagramFeatures", "BettiCurve", "PersistenceImage", "PersistenceLandscape",
                 "DiagramDistance"):
        cases.append((getattr(sktopo, name)(), _diagrams))
    cases.append((sktopo.DiagramDistance("sliced_wasserstein"), _diagrams))
    # the similarity measures take pairs of clouds (issue 24)
    for est in (sktopo.CKA(), sktopo.CKA(kernel="rbf", unbiased=True),
                sktopo.CKA(unbiased=True, batch_size=16, random_state=0), sktopo.SVCCA(),
                sktopo.PWCCA(), sktopo.ProcrustesDistance()):
        cases.append((est, _pairs))
    # every other exported cloud estimator, as soon as it exists (all share the base)
    from sktopo._base import CloudTransformer

    covered = {type(est) for est, _ in cases}
    for name in sktopo.__all__:
        obj = getattr(sktopo, name)
        if isinstance(obj, type) and issubclass(obj, CloudTransformer) and obj not in covered:
            est = obj()
            if "random_state" in est.get_params():
                est.set_params(random_state=0)
            cases.append((est, _clouds))
    return cases


CASES = _collection_cases()
CASE_IDS = [f"{_id(e)}-{i}" for i, (e, _) in enumerate(CASES)]


def _same_cell(x, y):
    if isinstance(x, np.ndarray):
        return np.array_equal(x, y)
    return x == y


def _same(a, b):
    if isinstance(a, (pd.Series, pd.DataFrame)):
        return a.index.equals(b.index) and all(
            _same_cell(x, y) for x, y in zip(np.ravel(a.values), np.ravel(b.values)))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_cell(x, y) for x, y in zip(a, b))
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


@pytest.mark.parametrize("estimator, make_X", CASES, ids=CASE_IDS)
def test_fit_returns_self_and_keeps_params(estimator, make_X):
    est = clone(estimator)
    params = {k: pickle.dumps(v) for k, v in est.get_params().items()}
    assert est.fit(make_X()) is est
    assert {k: pickle.dumps(v) for k, v in est.get_params().items()} == params


@pytest.mark.parametrize("estimator, make_X", CASES, ids=CASE_IDS)
def test_idempotent_and_pickle(estimator, make_X):
    X = make_X()
    est = clone(estimator).fit(X)
    first = est.transform(X)
    assert _same(first, clone(estimator).fit(X).fit(X).transform(X))
    assert _same(first, pickle.loads(pickle.dumps(est)).transform(X))


@pytest.mark.parametrize("estimator, make_X", CASES, ids=CASE_IDS)
def test_unfitted(estimator, make_X):
    with pytest.raises(NotFittedError):
        clone(estimator).transform(make_X())


@pytest.mark.parametrize("estimator, make_X", CASES, ids=CASE_IDS)
def test_row_order_invariance(estimator, make_X):
    if type(estimator).__name__ == "DiagramDistance":
        pytest.skip("a square table between rows: permuting rows permutes both axes")
    X = make_X()
    est = clone(estimator).fit(X)
    order = [2, 0, 3, 1]
    full = est.transform(X)
    permuted = est.transform(X.iloc[order])
    if isinstance(full, (pd.Series, pd.DataFrame)):
        assert _same(full.iloc[order], permuted)
    else:
        assert _same(np.asarray(full)[order], permuted)


# the per-cloud estimators: their randomness must follow the cloud, not its position
RANDOM_CASES = [(e, m) for e, m in CASES if "random_state" in e.get_params()]
RANDOM_IDS = [f"{_id(e)}-{i}" for i, (e, _) in enumerate(RANDOM_CASES)]


@pytest.mark.parametrize("estimator, make_X", RANDOM_CASES, ids=RANDOM_IDS)
def test_same_cloud_twice_gives_the_same_row_twice(estimator, make_X):
    X = make_X()
    twice = pd.concat([X, X.iloc[[1, 0]]])  # rows a, b, c, d, b, a
    est = clone(estimator).fit(twice)
    out = est.transform(twice)
    if isinstance(out, (pd.Series, pd.DataFrame)):
        assert _same(out.iloc[[1, 0]], out.iloc[[4, 5]].set_axis(out.index[[1, 0]]))
        # a subset, alone: the same numbers again
        assert _same(out.iloc[[3]], est.transform(twice.iloc[[3]]))
    else:
        out = np.asarray(out)
        assert _same(out[[1, 0]], out[[4, 5]])
        assert _same(out[[3]], clone(estimator).fit(twice.iloc[[3]]).transform(twice.iloc[[3]]))


@pytest.mark.parametrize("estimator, make_X", RANDOM_CASES, ids=RANDOM_IDS)
def test_same_numbers_on_any_n_jobs(estimator, make_X):
    X = make_X()
    one = clone(estimator).set_params(n_jobs=1).fit_transform(X)
    two = clone(estimator).set_params(n_jobs=2).fit_transform(X)
    assert _same(one, two)


@pytest.mark.parametrize("name", ["PHDimension", "TwoNN"])
def test_collection_tags(name):
    from sklearn.utils import get_tags

    tags = get_tags(getattr(sktopo, name)()).input_tags
    assert tags.three_d_array and not tags.two_d_array and not tags.pairwise
    # distance matrices are within clouds, not between samples: never "pairwise"
    assert not get_tags(getattr(sktopo, name)(metric="precomputed")).input_tags.pairwise
    assert not get_tags(sktopo.DiagramFeatures()).input_tags.two_d_array


def _number_parameters(est):
    """Parameters constrained to numbers (an Interval or a number type) that take no bool."""
    from numbers import Integral, Real

    from sklearn.utils._param_validation import Interval

    for name, options in getattr(est, "_parameter_constraints", {}).items():
        if options == "no_validation" or "boolean" in options or bool in options:
            continue
        if any(isinstance(c, Interval) or c in (Integral, Real) for c in options):
            yield name


@pytest.mark.parametrize("estimator", INSTANCES, ids=_id)
def test_a_bool_is_not_a_number(estimator):
    # scikit-learn's Interval(Integral/Real) takes True as 1: rank_tol=True,
    # n_directions=True, n_jobs=True, ... ran as if 1 had been given
    from sklearn.utils._param_validation import InvalidParameterError

    names = list(_number_parameters(estimator))
    for name in names:
        est = clone(estimator).set_params(**{name: True})
        with pytest.raises(InvalidParameterError,
                           match=rf"{type(est).__name__}: {name} must be .*; got the bool True"
                                 rf", which would be read as 1\. Pass the number you mean"):
            est.fit([make_circle(10, random_state=0)])


@pytest.mark.parametrize("estimator, make_X", CASES, ids=CASE_IDS)
def test_fit_remembers_the_input_columns(estimator, make_X):
    """n_features_in_ is the collection's number of columns (sources) on every estimator,
    the mappers too (issue 23, item 14: PersistenceDiagram.fit did not set it)."""
    X = make_X()
    est = clone(estimator).fit(X)
    if isinstance(X, pd.DataFrame):
        assert est.n_features_in_ == X.shape[1]
        np.testing.assert_array_equal(est.feature_names_in_, X.columns)
    else:
        assert est.n_features_in_ == 1 and not hasattr(est, "feature_names_in_")


@pytest.mark.parametrize("fit", ["fit", "fit_transform"])
def test_persistence_diagram_remembers_a_frame_s_columns(fit):
    clouds = _clouds()
    frame = pd.DataFrame({"conv1": clouds.values, "fc": clouds.values[::-1]}, index=clouds.index)
    est = sktopo.PersistenceDiagram((0,))
    getattr(est, fit)(frame)
    assert est.n_features_in_ == 2
    np.testing.assert_array_equal(est.feature_names_in_, ["conv1", "fc"])
    getattr(est, fit)(list(clouds.values))  # refitted on a list: one column, no names
    assert est.n_features_in_ == 1 and not hasattr(est, "feature_names_in_")
