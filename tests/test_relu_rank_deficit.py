"""The rank deficit of ReLURankRegions.summary: informative where layers narrow, and blind to
coordinates that are constant over the data (issue 23, item 1)."""

import numpy as np
import pytest
import torch
from torch import nn

from sktopo.nn.relu_rank import ReLURankRegions


def mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers).double()


def brute_force_deficit(ranks, units, data_rank):
    before = np.column_stack([np.full(len(ranks), data_rank), ranks[:, :-1]])
    bound = np.minimum(np.minimum(units[None, :], before), data_rank)
    return np.maximum(bound - ranks, 0)


def test_narrowing_mlp_deficit_is_informative_where_low_rank_is_constant():
    """64-64-32-16: every layer is 'low rank' (below 64) for every input, so that column says
    nothing; the deficit differs between layers and between inputs."""
    net = mlp([64, 64, 32, 16])
    X = np.random.default_rng(0).normal(size=(400, 64))
    est = ReLURankRegions(net).fit(X)
    summary = est.summary_
    assert est.data_rank_ == 64
    assert (summary.loc[["3", "5"], "frac_inputs_low_rank"] == 1).all()  # trivially constant
    ranks = est.transform(X)[:, 0::4]
    deficit = brute_force_deficit(ranks, summary["units"].to_numpy(), 64)
    np.testing.assert_allclose(summary["mean_rank_deficit"], deficit.mean(axis=0))
    np.testing.assert_allclose(summary["frac_inputs_rank_deficient"], (deficit > 0).mean(axis=0))
    assert summary["mean_rank_deficit"].nunique() == 3  # differs between layers
    assert (deficit.std(axis=0) > 0).all()              # and between inputs
    assert 0 < summary["frac_inputs_rank_deficient"].min() < 1
    # the deficit is bounded by the width: the last layer cannot lose more than its 16 units
    assert (deficit[:, -1] <= 16).all() and (deficit >= 0).all()


def test_wide_injective_mlp_has_no_deficit_but_narrow_layers_are_low_rank():
    """A layer that keeps all it can (positive weights: every unit active) has deficit 0, even
    where it narrows below the input width."""
    net = mlp([8, 32, 4])
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                layer.weight.abs_()
                layer.bias.fill_(1.0)
    X = np.random.default_rng(1).random(size=(100, 8))
    summary = ReLURankRegions(net).fit(X).summary_
    assert list(summary["min_rank"]) == [8, 4]
    assert (summary["mean_rank_deficit"] == 0).all()
    assert list(summary["frac_inputs_low_rank"]) == [0.0, 1.0]


def test_dead_inputs_cost_no_deficit():
    """Three coordinates constant over the data, whose first-layer weights are ~0 (as weight
    decay leaves a trained digits MLP): the first layer's rank is 61, 'low rank' against the
    input dimension for every input, but it loses nothing the data uses."""
    net = mlp([64, 128, 64])
    X = np.random.default_rng(2).normal(size=(300, 64))
    dead = [0, 7, 56]
    X[:, dead] = 0.0
    with torch.no_grad():
        net[0].weight[:, dead] = 1e-20
        net[0].bias.fill_(100.0)  # every first-layer unit active: it keeps all it can
    est = ReLURankRegions(net).fit(X)
    assert est.data_rank_ == 61
    first = est.summary_.iloc[0]
    assert first["max_rank"] == 61 and first["frac_inputs_low_rank"] == 1.0
    assert first["mean_rank_deficit"] == 0 and first["frac_inputs_rank_deficient"] == 0
    # summary(X) of other inputs counts against their own rank
    assert est.summary(X[:10]).iloc[0]["mean_rank_deficit"] == pytest.approx(0)
