"""ReLURankRegions: ranks against float64 Jacobian ranks, a hand-built network, bad inputs."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from torch import nn
from torch.autograd.functional import jacobian

from sktopo.nn.random_networks import random_relu_mlp
from sktopo.nn.relu_rank import ReLURankRegions


def brute_force_ranks(model, X, rank_tol=None):
    """(n, L) float64 Jacobian ranks of every ReLU output, one input at a time, with numpy."""
    model = copy.deepcopy(model).double().eval()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    X = torch.as_tensor(np.asarray(X), dtype=torch.float64)

    def relu_output(x, layer):
        out = []
        handle = relus[layer].register_forward_hook(lambda m, i, o: out.append(o))
        try:
            model(x[None])
        finally:
            handle.remove()
        return out[0].reshape(-1)

    ranks = np.zeros((X.shape[0], len(relus)), dtype=int)
    for i, x in enumerate(X):
        for layer in range(len(relus)):
            J = jacobian(lambda z: relu_output(z, layer), x).reshape(-1, x.numel())
            ranks[i, layer] = np.linalg.matrix_rank(J.numpy(), tol=rank_tol)
    return ranks


def ranks_of(features, n_layers):
    return np.asarray(features)[:, 0:4 * n_layers:4]


@pytest.mark.parametrize("widths", [[3, 3, 2], [4, 6], [40, 40]], ids=["narrow", "mixed", "wide"])
def test_ranks_match_float64_jacobian_mlp(widths):
    model = random_relu_mlp(5, widths, 2, random_state=1)
    X = np.random.default_rng(0).uniform(-3, 3, size=(60, 5))
    est = ReLURankRegions(model)
    got = ranks_of(est.fit_transform(X), len(widths))
    want = brute_force_ranks(model, X)
    np.testing.assert_array_equal(got, want)
    if widths[0] == 3:  # the narrow net really has rank-deficient regions
        assert got.min() < 5 and len(np.unique(got)) > 1


def test_ranks_match_float64_jacobian_conv():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    X = np.random.default_rng(1).normal(size=(25, 1, 4, 4))
    est = ReLURankRegions(model, batch_size=64)
    got = ranks_of(est.fit_transform(X), 3)
    np.testing.assert_array_equal(got, brute_force_ranks(model, X))
    assert est.input_shape_ == (1, 4, 4) and est.n_features_in_ == 16
    assert list(est.n_units_) == [32, 3, 4]


def test_dedup_merges_inputs_of_one_region():
    # A net whose regions are coarse: many inputs share a region and ranks are reused.
    model = random_relu_mlp(3, [4, 4], random_state=0)
    X = np.random.default_rng(0).normal(size=(300, 3))
    est = ReLURankRegions(model, batch_size=7).fit(X)
    regions = est.regions_
    assert regions["n_inputs"].sum() == 300
    assert len(regions) < 300
    features = est.transform(X)
    np.testing.assert_array_equal(ranks_of(features, 2), brute_force_ranks(model, X))


def hand_built_net():
    """Layer 1: identity then ReLU; layer 2: [[1, 1], [1, -1]] then ReLU, no biases."""
    l1, l2 = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        l1.weight.copy_(torch.eye(2))
        l2.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
    return nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU())


def test_hand_built_network_regions_and_ranks():
    # By hand, with D1 = diag(x1 > 0, x2 > 0) and A2 = D2 W2 D1:
    #   (2, 1):  D1 = I, units x1+x2 > 0 and x1-x2 > 0 on: A1 = I (rank 2), A2 = W2 (rank 2)
    #   (1, 2):  D1 = I, x1-x2 < 0 off: A2 = [[1, 1], [0, 0]] (rank 1)
    #   (2, -1): D1 = diag(1, 0) (rank 1), both units see x1 > 0: A2 = [[1, 0], [1, 0]] (rank 1)
    #   (-1, 2): D1 = diag(0, 1) (rank 1), unit 1 sees x2 > 0, unit 2 sees -x2 < 0 (rank 1)
    #   (-1, -2): everything off (rank 0, 0)
    #   (3, 1):  same region as (2, 1)
    X = pd.DataFrame([[2, 1], [1, 2], [2, -1], [-1, 2], [-1, -2], [3, 1]],
                     columns=["x1", "x2"], index=list("abcdef"), dtype=float)
    est = ReLURankRegions(hand_built_net()).set_output(transform="pandas")
    out = est.fit_transform(X)
    assert list(out.index) == list("abcdef")
    assert est.layer_names_ == ["1", "3"]
    assert list(out.columns[:4]) == ["1__rank", "1__active", "1__kernel_dim", "1__region"]
    assert list(out["1__rank"]) == [2, 2, 1, 1, 0, 2]
    assert list(out["1__active"]) == [2, 2, 1, 1, 0, 2]
    assert list(out["3__rank"]) == [2, 1, 1, 1, 0, 2]
    assert list(out["3__active"]) == [2, 1, 2, 1, 0, 2]
    assert list(out["3__kernel_dim"]) == [0, 1, 1, 1, 2, 0]
    # Region ids: a and b share the layer-1 region but not the layer-3 one; a and f share both.
    assert out.loc["a", "1__region"] == out.loc["b", "1__region"]
    assert out.loc["a", "3__region"] != out.loc["b", "3__region"]
    assert out.loc["a", "3__region"] == out.loc["f", "3__region"]
    assert out["3__region"].nunique() == 5

    regions = est.regions_
    assert len(regions) == 5 and regions["n_inputs"].iloc[0] == 2
    assert regions["first_input"].iloc[0] == "a"
    row = regions.loc[out.loc["b", "3__region"]]
    assert (row["1__rank"], row["3__rank"], row["first_low_rank_layer"]) == (2, 1, "3")
    assert regions.loc[out.loc["e", "3__region"], "first_low_rank_layer"] == "1"
    assert pd.isna(regions.loc[out.loc["a", "3__region"], "first_low_rank_layer"])

    summary = est.summary_
    assert list(summary["min_rank"]) == [0, 0]
    assert summary.loc["1", "frac_inputs_low_rank"] == pytest.approx(3 / 6)
    assert summary.loc["3", "frac_inputs_low_rank"] == pytest.approx(4 / 6)
    assert list(summary["n_regions"]) == [4, 5]
    assert summary.loc["1", "frac_regions_low_rank"] == pytest.approx(3 / 4)
    assert summary.loc["3", "frac_regions_low_rank"] == pytest.approx(4 / 5)
    assert summary.loc["3", "mean_rank"] == pytest.approx(7 / 6)

    # low_rank moves the level; rank_tol moves the tolerance.
    est1 = ReLURankRegions(hand_built_net(), low_rank=1).fit(X)
    assert est1.summary_.loc["3", "frac_inputs_low_rank"] == pytest.approx(1 / 6)
    huge = ReLURankRegions(hand_built_net(), rank_tol=10.0).fit(X)
    assert huge.summary_["max_rank"].max() == 0


def test_region_ids_are_stable_across_calls_and_batches():
    model = random_relu_mlp(4, [8, 8], random_state=3)
    X = np.random.default_rng(3).normal(size=(50, 4))
    a = ReLURankRegions(model, batch_size=5).fit(X).transform(X)
    b = ReLURankRegions(model, batch_size=1000).fit(X[:10]).transform(X)
    np.testing.assert_array_equal(a, b)


def test_get_feature_names_and_clone():
    est = ReLURankRegions(hand_built_net(), dtype="float32", batch_size=3)
    params = clone(est).get_params()
    assert params["dtype"] == "float32" and params["batch_size"] == 3
    est.fit(np.ones((2, 2)))
    assert list(est.get_feature_names_out()) == [
        "1__rank", "1__active", "1__kernel_dim", "1__region",
        "3__rank", "3__active", "3__kernel_dim", "3__region"]
    assert est.transform(np.ones((3, 2))).dtype == np.int64


def test_model_is_left_unchanged():
    model = random_relu_mlp(3, [5], 1, random_state=0).train()
    before = [p.detach().clone() for p in model.parameters()]
    ReLURankRegions(model, dtype="float64").fit(np.random.default_rng(0).normal(size=(10, 3)))
    assert model.training and all(m.training for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_shared_relu_module_called_twice_is_two_layers():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.relu = nn.Linear(3, 4), nn.Linear(4, 2), nn.ReLU()

        def forward(self, x):
            return self.relu(self.fc2(self.relu(self.fc1(x))))

    torch.manual_seed(0)
    model = Shared()
    X = np.random.default_rng(0).normal(size=(20, 3))
    est = ReLURankRegions(model).fit(X)
    assert est.layer_names_ == ["relu", "relu#2"]
    got = ranks_of(est.transform(X), 2)
    # Brute force by hand: Jacobians of the two ReLU outputs.
    m = copy.deepcopy(model).double()
    for i, x in enumerate(torch.as_tensor(X)):
        j1 = jacobian(lambda z: m.relu(m.fc1(z)), x).numpy()
        j2 = jacobian(lambda z: m.relu(m.fc2(m.relu(m.fc1(z)))), x).numpy()
        assert (got[i, 0], got[i, 1]) == (np.linalg.matrix_rank(j1), np.linalg.matrix_rank(j2))


def test_float32_matches_float64_on_well_conditioned_net():
    model = random_relu_mlp(4, [30, 30], random_state=0)
    X = np.random.default_rng(0).normal(size=(40, 4))
    r64 = ReLURankRegions(model).fit_transform(X)
    r32 = ReLURankRegions(model, dtype="float32").fit_transform(X)
    np.testing.assert_array_equal(ranks_of(r64, 2), ranks_of(r32, 2))


# ---------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("activation", [nn.Tanh(), nn.GELU(), nn.Sigmoid(), nn.ELU(),
                                        nn.LeakyReLU(), nn.Softplus()])
def test_other_activation_is_refused_by_name(activation):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), activation)
    with pytest.raises(ValueError, match=rf"module '3' \({type(activation).__name__}\)"):
        ReLURankRegions(model).fit(np.ones((4, 2)))


@pytest.mark.parametrize("pool", [nn.LPPool2d(2, 2), nn.FractionalMaxPool2d(2, output_size=2)])
def test_lp_and_fractional_pooling_are_refused_with_advice(pool):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), pool)
    with pytest.raises(ValueError, match=rf"'2' \({type(pool).__name__}\).*AvgPool"):
        ReLURankRegions(model).fit(np.ones((2, 1, 6, 6)))


def test_functional_nonlinearity_is_detected_on_merged_regions():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2 = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3)

        def forward(self, x):
            return self.relu(self.fc2(torch.tanh(self.fc1(x))))

    torch.manual_seed(0)
    with pytest.raises(ValueError, match="not affine.*F.relu, torch.tanh"):
        ReLURankRegions(Hidden()).fit(np.random.default_rng(0).normal(size=(200, 2)) * 3)


def test_no_relu_and_not_a_module():
    with pytest.raises(ValueError, match="No nn.ReLU module"):
        ReLURankRegions(nn.Linear(2, 2)).fit(np.ones((2, 2)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ReLURankRegions("net").fit(np.ones((2, 2)))


def test_wrong_input_dimension():
    est = ReLURankRegions(hand_built_net())
    with pytest.raises(ValueError, match="could not run on inputs of shape \\(3,\\)"):
        est.fit(np.ones((4, 3)))
    est.fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"shape \(3,\), but .* fitted on inputs of shape \(2,\)"):
        est.transform(np.ones((4, 3)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        est.transform(np.ones(2))


def test_nan_is_refused_naming_the_input():
    X = pd.DataFrame(np.ones((4, 2)), index=["p", "q", "r", "s"])
    X.iloc[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 input\(s\), first at \['r'\]"):
        ReLURankRegions(hand_built_net()).fit(X)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="dtype"):
        ReLURankRegions(hand_built_net(), dtype="float16").fit(np.ones((2, 2)))
    with pytest.raises(ValueError, match="device"):
        ReLURankRegions(hand_built_net(), device="tpu").fit(np.ones((2, 2)))



def test_n_threads_is_used_while_the_network_runs_and_restored():
    net = random_relu_mlp(4, [16, 8], random_state=0)
    X = np.random.default_rng(0).normal(size=(30, 4))
    seen = []
    net[0].register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        est = ReLURankRegions(net, device="cpu", n_threads=1).fit(X)
        est.transform(X[:5])
        est.network_output(X[:5])
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        ReLURankRegions(net, device="cpu").fit(X)  # None keeps torch's setting
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="n_threads"):
            ReLURankRegions(net, n_threads=bad).fit(X)

def test_set_output_pandas_keeps_index_and_names():
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(5, 2)), index=list("vwxyz"),
                     columns=["a", "b"])
    est = ReLURankRegions(hand_built_net()).set_output(transform="pandas").fit(X)
    out = est.transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list("vwxyz")
    assert list(out.columns) == list(est.get_feature_names_out())
    with pytest.raises(ValueError, match="columns different"):
        est.transform(X.rename(columns={"a": "c"}))


def test_torch_tensor_input():
    X = torch.randn(6, 2)
    est = ReLURankRegions(hand_built_net()).fit(X)
    np.testing.assert_array_equal(est.transform(X), est.transform(X.numpy()))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    model = random_relu_mlp(6, [50, 50], random_state=0)
    X = np.random.default_rng(0).normal(size=(500, 6))
    cpu = ReLURankRegions(model, device="cpu").fit_transform(X)
    gpu = ReLURankRegions(model, device="cuda").fit_transform(X)
    np.testing.assert_array_equal(cpu, gpu)


@pytest.mark.parametrize("rank_tol", [None, 1e-9])
def test_batched_rank_equals_numpy_near_the_tolerance(rank_tol):
    # Matrices with singular values spread around the tolerance: the Gram-eigenvalue screen
    # must hand every doubtful case to the SVD.
    rng = np.random.default_rng(0)
    mats = []
    for smallest in [1.0, 1e-4, 1e-7, 1e-10, 1e-12, 1e-13, 1e-14, 1e-15, 1e-17, 0.0]:
        for shape in [(6, 20), (20, 6), (5, 5)]:
            u, _ = np.linalg.qr(rng.normal(size=(shape[0], shape[0])))
            v, _ = np.linalg.qr(rng.normal(size=(shape[1], shape[1])))
            s = np.geomspace(1.0, max(smallest, 1e-300), min(shape))
            if smallest == 0:
                s[-2:] = 0
            m = np.zeros(shape)
            m[:len(s), :len(s)] = np.diag(s)
            mats.append((shape, u @ m @ v.T))
    est = ReLURankRegions(hand_built_net(), rank_tol=rank_tol)
    for shape in {m[0] for m in mats}:
        batch = np.stack([m for sh, m in mats if sh == shape])
        got = est._matrix_rank(torch.as_tensor(batch)).numpy()
        want = [np.linalg.matrix_rank(m, tol=rank_tol) for m in batch]
        np.testing.assert_array_equal(got, want)


def test_verbose_progress_bars(capsys):
    X = np.random.default_rng(0).normal(size=(30, 2))
    ReLURankRegions(hand_built_net(), verbose=1, batch_size=10).fit(X)
    assert "activation patterns" in capsys.readouterr().err


def test_hash_collision_falls_back_to_exact_dedup():
    from sktopo.nn._relu_patterns import pack_pattern, unique_regions

    patterns = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 0, 0]], dtype=bool)
    words = pack_pattern(patterns)
    colliding = np.zeros(4, dtype=np.int64)  # every pattern gets the same (bad) hash
    _, first, inverse = unique_regions(colliding, words)
    np.testing.assert_array_equal(first, [0, 1, 3])
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2])


def test_batchnorm_and_dropout_run_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(inplace=True),
                          nn.Dropout(0.5), nn.Linear(6, 4), nn.ReLU())
    model(torch.randn(64, 3))  # fill the running statistics
    model.train()
    X = np.random.default_rng(0).normal(size=(40, 3))
    got = ranks_of(ReLURankRegions(model).fit_transform(X), 2)
    np.testing.assert_array_equal(got, brute_force_ranks(model, X))
    assert model.training


def test_summary_and_region_table_on_new_inputs_match_fitted():
    import torch

    from sktopo.nn.relu_rank import ReLURankRegions

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4),
                                torch.nn.ReLU())
    X = np.random.default_rng(0).normal(size=(40, 3))
    est = ReLURankRegions(model).fit(X)
    pd.testing.assert_frame_equal(est.summary(X), est.summary_)
    pd.testing.assert_frame_equal(est.region_table(X), est.regions_)


def test_tracer_hooks_see_in_place_relu_inputs_and_leave_no_hook():
    # The tracer replaces each ReLU call's output through a forward hook: an in-place ReLU must
    # get a copy (so a frozen mask of ones passes negative pre-activations through, and the
    # previous layer's tensor is not changed), and every hook is gone afterwards, also when
    # the pass stops early after the last traced call.
    from sktopo.nn._relu_network import ReLUTracer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 5), nn.ReLU(inplace=True), nn.Linear(5, 3),
                          nn.ReLU(inplace=True), nn.Linear(3, 1)).double().eval()
    x = torch.randn(8, 2, dtype=torch.float64)
    pre = model[0](x)
    assert (pre < 0).any()
    tracer = ReLUTracer(model, ["1", "3"])
    names, patterns, _ = tracer.patterns(x)
    assert names == ["1", "3"]
    torch.testing.assert_close(patterns[0], pre > 0, rtol=0, atol=0)
    seen = []
    ones = [torch.ones(8, 5), torch.ones(8, 3)]
    out, calls = tracer.frozen(x, ones, lambda call, y: seen.append(y))
    torch.testing.assert_close(seen[0], pre, rtol=0, atol=0)  # not relu(pre)
    torch.testing.assert_close(out, model[4](model[2](pre)), rtol=0, atol=0)
    assert calls == ["1", "3"]
    early = ReLUTracer(model, ["1", "3"], n_calls=1)
    assert early.patterns(x)[0] == ["1"]
    for module in model:
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert "forward" not in module.__dict__


def brute_force_layer_patterns(model, X):
    """Per ReLU layer, the (n, units) 0/1 patterns pre-activation > 0 by a plain forward pass."""
    h = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    patterns = []
    with torch.no_grad():
        for module in copy.deepcopy(model).double():
            if isinstance(module, nn.ReLU):
                patterns.append((h > 0).numpy())
            h = module(h)
    return patterns


def test_layer_codes_match_brute_force_patterns_of_each_layer_alone():
    net = random_relu_mlp(2, [3, 4, 3], 2, random_state=3)
    X = np.random.default_rng(1).normal(size=(300, 2))
    est = ReLURankRegions(net).fit(X)
    expected = brute_force_layer_patterns(net, X)
    summary = est.summary_
    assert list(summary.columns) == ["units", "min_rank", "mean_rank", "max_rank", "mean_active",
                                     "mean_rank_deficit", "frac_inputs_rank_deficient",
                                     "n_regions", "frac_inputs_low_rank",
                                     "frac_regions_low_rank", "n_local_codes"]
    cumulative_differs = False
    for position, name in enumerate(est.layer_names_):
        codes, patterns = est.layer_codes(layer=name, return_patterns=True)
        np.testing.assert_array_equal(patterns, expected[position])
        assert codes.attrs["layer"] == name and codes.name == "local_code"
        assert codes.index.equals(pd.RangeIndex(len(X)))
        # equal codes <=> equal patterns, numbered 0, 1, ... in order of first appearance
        rows, first, inverse = np.unique(expected[position], axis=0, return_index=True,
                                         return_inverse=True)
        order = np.argsort(first)
        renumber = np.empty_like(order)
        renumber[order] = np.arange(order.size)
        np.testing.assert_array_equal(codes.to_numpy(), renumber[inverse.reshape(-1)])
        assert summary.loc[name, "n_local_codes"] == len(rows)
        # same codes from a new call on the same inputs, by position as by name
        np.testing.assert_array_equal(est.layer_codes(X, layer=position).to_numpy(), codes)
        regions = est.input_table(layer=name)["region"].to_numpy()
        for code in np.unique(codes):
            cumulative_differs |= np.unique(regions[codes.to_numpy() == code]).size > 1
    assert cumulative_differs  # the local codeword is not the cumulative region id
    assert est.layer_codes().attrs["layer"] == est.layer_names_[-1]


def test_layer_codes_index_follows_dataframe_and_rejects_bad_layer():
    net = random_relu_mlp(2, [5, 5], random_state=0)
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 2)), columns=["a", "b"],
                     index=[f"x{i}" for i in range(40)])
    est = ReLURankRegions(net).fit(X)
    assert list(est.layer_codes(X, layer=0).index) == list(X.index)
    with pytest.raises(ValueError, match="not a ReLU layer"):
        est.layer_codes(layer="nope")


def jacobian_ranks(model, X):
    """(n, L) float64 ranks of reverse-mode (vectorised) Jacobians of every nn.ReLU output."""
    model = copy.deepcopy(model).double().eval()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    X = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    ranks = np.zeros((X.shape[0], len(relus)), dtype=int)
    for layer, relu in enumerate(relus):
        def output(x):
            out = []
            handle = relu.register_forward_hook(lambda m, i, o: out.append(o))
            try:
                model(x[None])
            finally:
                handle.remove()
            return out[0].reshape(-1)

        for i, x in enumerate(X):
            J = jacobian(output, x, vectorize=True).reshape(-1, x.numel())
            ranks[i, layer] = np.linalg.matrix_rank(J.numpy())
    return ranks


def test_maxpool_cnn_ranks_match_float64_jacobian_ranks():
    from sklearn.datasets import load_digits

    from sktopo.nn.models import DigitsCNN

    X = load_digits().data[:6].reshape(-1, 1, 8, 8) / 16.0
    for seed in (0, 1):
        net = DigitsCNN(channels=(4, 6, 8), random_state=seed).double()
        est = ReLURankRegions(net).fit(X)
        np.testing.assert_array_equal(ranks_of(est.transform(X), 3), jacobian_ranks(net, X))
    torch.manual_seed(0)
    tiny = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                         nn.Conv2d(3, 2, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(2, 3), nn.ReLU()).double()
    Xt = np.random.default_rng(0).normal(size=(30, 1, 5, 5))
    est = ReLURankRegions(tiny).fit(Xt)
    np.testing.assert_array_equal(ranks_of(est.transform(Xt), 3), jacobian_ranks(tiny, Xt))
    assert est.summary_["min_rank"].iloc[-1] <= 3
    # Dense segments (Linear) across max pooling, before the first ReLU and between two: the
    # maps between ReLU calls depend on the region's argmax, so none may be shared (a map
    # materialised on one region gives wrong ranks on others).
    torch.manual_seed(0)
    dense = nn.Sequential(nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4, 3), nn.ReLU(),
                          nn.Unflatten(1, (1, 3)), nn.MaxPool1d(2, stride=1), nn.Flatten(),
                          nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU()).double()
    Xd = np.random.default_rng(0).normal(size=(40, 1, 8))
    est = ReLURankRegions(dense).fit(Xd)
    np.testing.assert_array_equal(ranks_of(est.transform(Xd), 3), jacobian_ranks(dense, Xd))


def test_maxpool_argmax_is_part_of_the_region_and_ties_are_deterministic():
    # One 2 x 2 window, then an always-active ReLU: the ReLU pattern never changes, the argmax
    # does, and the map x -> output reads a different pixel in each case.
    net = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1, 2), nn.ReLU()).double()
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([[1.0], [2.0]]))
        net[2].bias.fill_(10.0)
    X = np.zeros((4, 1, 2, 2))
    X[0, 0, 0, 0] = X[1, 0, 1, 1] = 1.0   # different winners
    X[2, 0, 0, 0] = 2.0                    # same winner as input 0, another value
    X[3, 0, 0, :] = 1.0                    # a tie: torch picks one index, the same every time
    est = ReLURankRegions(net).fit(X)
    region = est.input_table()["region"].to_numpy()
    assert region[0] == region[2] and region[0] != region[1]
    # the tie goes to torch's index (the Jacobian's too): the region of that winner
    winner = int(nn.functional.max_pool2d(torch.as_tensor(X[3:]), 2, return_indices=True)[1])
    assert winner in (0, 1)
    if winner == 0:  # the same winner as input 0
        assert region[3] == region[0] and est.regions_.shape[0] == 2
    else:            # a winner of its own
        assert len({region[0], region[1], region[3]}) == 3 and est.regions_.shape[0] == 3
    assert ReLURankRegions(net).fit(X).input_table()["region"].equals(est.input_table()["region"])
    np.testing.assert_array_equal(est.input_table(X)["region"].to_numpy(), region)
    np.testing.assert_array_equal(ranks_of(est.transform(X), 1), jacobian_ranks(net, X))
    assert est.layer_codes().nunique() == 1  # same ReLU pattern everywhere
