"""Random ReLU network generators: shapes, seeds, weight statistics and sign structure."""

import numpy as np
import pytest
import torch
from torch import nn

from sktopo.nn.random_networks import dale_mlp, random_relu_mlp, sign_flipped_mlp
from sktopo.nn.relu_rank import ReLURankRegions


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def test_architecture_and_default_init():
    model = random_relu_mlp(3, [200, 100], 2, random_state=0)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    w = linears(model)[1].weight.detach().numpy()
    # PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1 / np.sqrt(200)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.mean()) < 0.05 * bound
    assert model[-1].out_features == 2 and not model.training
    assert isinstance(random_relu_mlp(2, 5)[-1], nn.ReLU)  # no output layer by default


def test_seeded_and_dtype():
    a = random_relu_mlp(4, [8, 8], 1, random_state=7)
    b = random_relu_mlp(4, [8, 8], 1, random_state=7)
    c = random_relu_mlp(4, [8, 8], 1, random_state=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)
    assert random_relu_mlp(2, 3, dtype="float64", random_state=0)[0].weight.dtype == torch.float64


def test_normal_weights_mean_and_std():
    model = random_relu_mlp(100, [400], weight_mean=0.2, weight_std=0.1, bias=False,
                            random_state=0)
    w = model[0].weight.detach().numpy()
    assert w.mean() == pytest.approx(0.2, abs=0.005)
    assert w.std() == pytest.approx(0.1, abs=0.005)
    assert model[0].bias is None


def test_sign_flipped_rows():
    model = sign_flipped_mlp(5, [20, 10], [3, 4], random_state=0)
    w1, w2 = (lin.weight.detach().numpy() for lin in linears(model))
    assert ((w1 < 0).all(axis=1).sum(), (w1 > 0).all(axis=1).sum()) == (3, 17)
    assert ((w2 < 0).all(axis=1).sum(), (w2 > 0).all(axis=1).sum()) == (4, 6)


def test_sign_flipped_min_rank_follows_k():
    # Study B: the minimum rank follows min(k, width - k, d).
    X = np.random.default_rng(0).uniform(-5, 5, size=(100, 10))
    for k, expected in [(0, 0), (2, 2), (48, 2)]:
        model = sign_flipped_mlp(10, 50, k, random_state=0)
        assert ReLURankRegions(model).fit(X).summary_["min_rank"].iloc[0] == expected


def test_dale_columns_have_one_sign():
    model = dale_mlp(6, [12, 8], 2, inhibition=3.0, random_state=0)
    w1, w2 = (lin.weight.detach().numpy() for lin in linears(model))
    for w in (w1, w2):
        inhibitory = (w <= 0).all(axis=0)
        assert inhibitory.sum() == 2 and ((w >= 0).all(axis=0) | inhibitory).all()
    # Balanced default: the expected row sum is zero, (fan_in - k) / k per inhibitory column.
    w = dale_mlp(10, [2000], 2, bias=False, random_state=0)[0].weight.detach().numpy()
    assert abs(w.sum(axis=1).mean()) < 0.1 * np.abs(w).sum(axis=1).mean()


@pytest.mark.parametrize("call, match", [
    (lambda: random_relu_mlp(0, [3]), "positive integers"),
    (lambda: random_relu_mlp(2, [3, -1]), "positive integers"),
    (lambda: sign_flipped_mlp(2, [3], 5), r"n_flipped=5 .* \[0, 3\]"),
    (lambda: sign_flipped_mlp(2, [3, 3], [1]), "list of 2 ints"),
    (lambda: dale_mlp(2, [3], 3), r"n_inhibitory=3 .* \[0, 2\]"),
    (lambda: dale_mlp(2, [3], 1, inhibition=-1.0), "non-negative"),
    (lambda: random_relu_mlp(2, 3, dtype="int8"), "dtype"),
    (lambda: random_relu_mlp(2, [3], weight_std=-1.0), "weight_std must be non-negative"),
    (lambda: sign_flipped_mlp(2, [3], 1, weight_std=-1.0), "weight_std must be non-negative"),
    (lambda: dale_mlp(2, [3], 1, weight_std=-1.0), "weight_std must be non-negative"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_generators_keep_their_numbers():
    # sign_flipped_mlp and dale_mlp share one generator; the weights of a seed are pinned.
    def checksum(model):
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    assert checksum(sign_flipped_mlp(5, [20, 10], [3, 4], 2, random_state=0)) == pytest.approx(
        19.357952474383637, abs=1e-9)
    assert checksum(dale_mlp(6, [12, 8], 2, 3, inhibition=3.0, random_state=0)) == pytest.approx(
        -2.3032989972271025, abs=1e-9)
    assert checksum(dale_mlp(10, [30], 4, random_state=1)) == pytest.approx(
        0.9584866294753738, abs=1e-9)


def test_dale_inhibition_factor_of_study_b():
    # Study B's Dale networks scale the inhibitory columns by a fixed -4.
    model = dale_mlp(8, [50], 2, inhibition=4.0, bias=False, random_state=0)
    w = model[0].weight.detach().numpy()
    inhibitory = (w < 0).all(axis=0)
    positive = np.abs(dale_mlp(8, [50], 0, bias=False, random_state=0)[0].weight.detach().numpy())
    assert inhibitory.sum() == 2
    np.testing.assert_allclose(-w[:, inhibitory], 4 * positive[:, inhibitory], rtol=1e-6)
    np.testing.assert_allclose(w[:, ~inhibitory], positive[:, ~inhibitory], rtol=1e-6)
