"""ReLURankRegions at numerical edges (issue 22, item 12), against float64 Jacobian ranks.

Where the float64 Jacobian of the network itself under- or overflows, the reference is the
Jacobian of a *twin*: the same network with every layer's weights (and biases) multiplied by a
power of two. That leaves every activation pattern unchanged, multiplies each ``A_l`` by a
power of two (exactly) and so leaves numpy's default-tolerance rank unchanged.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sktopo.nn._relu_engine import RankEngine, matrix_rank
from sktopo.nn._relu_reference import jacobian_ranks
from sktopo.nn.relu_rank import ReLURankRegions


def engine_ranks(model, X, **params):
    return np.asarray(ReLURankRegions(model, **params).fit_transform(X))[:, 0::4]


def scaled_twin(model, factor):
    """Weights times ``factor`` and the biases of the l-th weighted layer times ``factor**l``
    (a chain): every pre-activation of layer l is multiplied by ``factor**l``."""
    twin = copy.deepcopy(model)
    depth = 0
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                depth += 1
                module.weight.mul_(factor)
                if module.bias is not None:
                    module.bias.mul_(factor ** depth)
    return twin


def chain_counts(monkeypatch):
    """Spy on ConvChain.certify: [certified, handed back] regions."""
    from sktopo.nn._relu_engine import ConvChain

    counts = [0, 0]
    original = ConvChain.certify

    def spy(self, masks):
        ok = original(self, masks)
        counts[0] += int(ok.sum())
        counts[1] += int((~ok).sum())
        return ok

    monkeypatch.setattr(ConvChain, "certify", spy)
    return counts


# ---------------------------------------------------------------------- (a) skip paths
class TinySkip(nn.Module):
    """relu(fc2(relu(fc1 x)) + 1e-9 x): fc2's output near 1e8, whose rounding step (1.5e-8)
    exceeds the skip's contribution to it."""

    def __init__(self, d=6, hidden=2, skip=1e-9):
        super().__init__()
        self.fc1, self.r1 = nn.Linear(d, hidden), nn.ReLU()
        self.fc2, self.r2 = nn.Linear(hidden, d), nn.ReLU()
        self.skip = skip

    def forward(self, x):
        return self.r2(self.fc2(self.r1(self.fc1(x))) + self.skip * x)


def test_a_skip_below_one_rounding_step_of_its_sum_is_kept():
    torch.manual_seed(0)
    model = TinySkip().double()
    with torch.no_grad():
        model.fc1.bias.fill_(10.0)
        model.fc2.bias.fill_(1e8)
    X = np.random.default_rng(0).normal(size=(5, 6))
    want = jacobian_ranks(model, X)
    assert (want == [2, 6]).all()  # the skip's 1e-9 I is far above the tolerance
    np.testing.assert_array_equal(engine_ranks(model, X), want)


def test_a_parents_are_decided_on_tangents():
    torch.manual_seed(0)
    model = TinySkip().double().eval()
    with torch.no_grad():
        model.fc2.bias.fill_(1e8)
    x = torch.randn(3, 6, dtype=torch.float64)
    masks = [torch.ones(3, 2, dtype=torch.float64), torch.ones(3, 6, dtype=torch.float64)]
    for skip, want in [(1e-9, [-1, -1]), (0.0, [-1, 0])]:  # no path around r1: its parent
        model.skip = skip
        engine = RankEngine(model, ["r1", "r2"], [2, 6], (6,), rank_tol=None, batch_size=64,
                            progress=lambda it, desc=None: it)
        assert engine._parents(x, masks) == want


# ---------------------------------------------------------------------- (b) underflow
def test_b_a_layer_of_weights_1e_170_keeps_its_rank():
    lin = nn.Linear(2, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
                          * 1e-170)
        lin.bias.fill_(1.0)
    model = nn.Sequential(lin, nn.ReLU())
    X = np.random.default_rng(0).normal(size=(3, 2))
    want = jacobian_ranks(model, X)
    assert (want == 2).all()
    np.testing.assert_array_equal(engine_ranks(model, X), want)


def _permutation_chain(n_layers, d, weight_scale, seed=0, bias=1.0):
    """Linear layers P_l * weight_scale (P_l a permutation): on positive inputs with positive
    biases every unit is active and A_l is weight_scale**l times a permutation (rank d)."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(n_layers):
        lin = nn.Linear(d, d, bias=bias is not None).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(np.eye(d)[rng.permutation(d)] * weight_scale))
            if bias is not None:
                lin.bias.fill_(bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers)


def test_b_a_25_layer_mlp_with_weights_1e_7_keeps_its_last_ranks():
    torch.manual_seed(0)
    layers = []
    for _ in range(25):
        lin = nn.Linear(3, 3).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(3, 3, dtype=torch.float64) * 1e-7)
            lin.bias.fill_(1.0)
        layers += [lin, nn.ReLU()]
    model = nn.Sequential(*layers)
    X = np.random.default_rng(0).normal(size=(3, 3))
    want = jacobian_ranks(model, X)
    assert (want == 3).all()
    np.testing.assert_array_equal(engine_ranks(model, X), want)


def test_b_factors_are_carried_rescaled_past_the_float64_range():
    # 60 layers of 2**-23 (A_60 ~ 2**-1380: the float64 Jacobian itself is 0). The twin with
    # weights of norm 1 has the same patterns (all active) and ranks.
    model = _permutation_chain(60, 3, 2.0 ** -23)
    twin = _permutation_chain(60, 3, 1.0)
    X = np.random.default_rng(0).uniform(0.5, 1.0, size=(3, 3))
    want = jacobian_ranks(twin, X)
    assert (want == 3).all()
    np.testing.assert_array_equal(engine_ranks(model, X), want)


def test_b_overflowing_factors_are_carried_rescaled():
    # Permutations times 2**23 on positive inputs of 2**-1000, no biases: every unit active,
    # the forward pass finite (2**380 at the end), but A_60 = 2**1380 P overflows unscaled.
    model = _permutation_chain(60, 3, 2.0 ** 23, bias=None)
    X = np.random.default_rng(0).uniform(0.5, 1.0, size=(3, 3))
    want = jacobian_ranks(_permutation_chain(60, 3, 1.0, bias=None), X)
    assert (want == 3).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing overflows that rescaling cannot remove
        np.testing.assert_array_equal(engine_ranks(model, X * 2.0 ** -1000), want)


@pytest.mark.parametrize("rank_tol", [1e-9, 1e-14])
def test_b_an_absolute_rank_tol_follows_the_rescaled_factors(rank_tol):
    # A rank-deficient-looking product W2 W1 (singular values 1 ... 1e-15) with its layers
    # scaled by 2**-300 each: the absolute tolerance scaled by 2**-600 gives numpy's ranks of
    # the unscaled product with rank_tol.
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    v, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    w1 = u @ np.diag([1.0, 1e-5, 1e-10, 1e-15]) @ v.T
    w2 = np.eye(4)[::-1].copy()
    layers = []
    for w, b in [(w1, 100.0), (w2, 100.0)]:
        lin = nn.Linear(4, 4).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w * 2.0 ** -300))
            lin.bias.fill_(b)
        layers += [lin, nn.ReLU()]
    model = nn.Sequential(*layers)
    X = rng.normal(size=(2, 4))
    want = [np.linalg.matrix_rank(w1, tol=rank_tol), np.linalg.matrix_rank(w2 @ w1, tol=rank_tol)]
    np.testing.assert_array_equal(engine_ranks(model, X, rank_tol=rank_tol * 2.0 ** -300),
                                  [[want[0], 0], [want[0], 0]])
    np.testing.assert_array_equal(engine_ranks(model, X, rank_tol=rank_tol * 2.0 ** -600),
                                  [[4, want[1]], [4, want[1]]])


# ---------------------------------------------------------------------- (c) certificates
@pytest.mark.parametrize("scale", [1e-160, 1e-300, 1e160])
def test_c_the_cholesky_certificate_is_sound_at_extreme_scales(scale):
    # Rank 2 by numpy's rule (a third singular value of 1e-17), entries near ``scale``: the
    # Gram matrix is subnormal (1e-160) or overflows (1e160) unless the matrix is rescaled.
    got, want = [], []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        u, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        v, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        a = u @ np.diag([1.0, 1.0, 1e-17]) @ v.T * scale
        got.append(int(matrix_rank(torch.as_tensor(a)[None], torch.tensor([3]),
                                   torch.tensor([3]), (3, 3))[0]))
        want.append(np.linalg.matrix_rank(a))
    assert set(want) == {2}
    assert got == want


def test_c_matrix_rank_with_an_exponent_and_an_absolute_tolerance():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 4)) @ np.diag([1.0, 1e-3, 1e-8, 1e-12])
    for e in (-1500, -700, 0, 700):
        b = torch.as_tensor(a)[None]
        got = matrix_rank(b, torch.tensor([5]), torch.tensor([4]), (5, 4),
                          rank_tol=1e-6 * 2.0 ** max(min(e, 1000), -1000),
                          exponent=torch.tensor([max(min(e, 1000), -1000)]))
        assert int(got[0]) == np.linalg.matrix_rank(a, tol=1e-6)


DIGITS_LIKE = [
    lambda: nn.Conv2d(1, 4, 3, padding=1), nn.ReLU, lambda: nn.Conv2d(4, 6, 3, padding=1),
    nn.ReLU, lambda: nn.AvgPool2d(2), lambda: nn.Conv2d(6, 12, 3, padding=1), nn.ReLU]


@pytest.mark.parametrize("log2_scale", [-200, 200, 280])
def test_c_conv_chain_certificates_at_extreme_scales(log2_scale, monkeypatch):
    # Every conv's weights times 2**log2_scale (biases accordingly): windows of 2**-600 (their
    # Gram underflows), of 2**600 (it overflows), norm bounds whose product overflows a float.
    counts = chain_counts(monkeypatch)
    torch.manual_seed(0)
    base = nn.Sequential(*[make() for make in DIGITS_LIKE]).double()
    X = np.random.default_rng(1).normal(size=(10, 1, 6, 6))
    want = jacobian_ranks(base, X)
    assert want.min() < 36 and want.max() == 36
    np.testing.assert_array_equal(engine_ranks(scaled_twin(base, 2.0 ** log2_scale), X), want)
    assert counts[0] > 0  # the certificate still decides the full-rank regions


class DeepConv(nn.Module):
    """Convolutions and ReLUs in a loop (not an nn.Sequential: no ConvChain); their segments
    are sparse, so the factors of a chain of them are pushed from the input in one pass."""

    def __init__(self, n=25):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else 2, 2, 3, padding=1, bias=False)
                                    for i in range(n)])
        self.relus = nn.ModuleList([nn.ReLU() for _ in range(n)])

    def forward(self, x):
        for conv, relu in zip(self.convs, self.relus):
            x = relu(conv(x))
        return x


def test_c_a_fused_push_that_overflows_is_redone_one_segment_at_a_time():
    torch.manual_seed(0)
    twin = DeepConv().double()
    with torch.no_grad():
        for conv in twin.convs:
            conv.weight.uniform_(0.05, 0.1)  # positive: every unit active on positive inputs
            conv.weight[0, 0, 0, 0] = -0.05
    model = scaled_twin(twin, 2.0 ** 45)  # A_25 ~ 2**1125 times the twin's
    X = np.random.default_rng(0).uniform(0.5, 1.0, size=(4, 1, 6, 6))
    want = jacobian_ranks(twin, X)
    assert want[:, -1].max() < 36
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(engine_ranks(model, X * 2.0 ** -1000), want)


# ---------------------------------------------------------------------- (d) overflow
def _first_overflowing_relu(model, x):
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    seen = []
    handles = [m.register_forward_hook(
        lambda mod, inp, out, name=name: seen.append((name, bool(torch.isfinite(inp[0]).all()))))
        for name, m in model.named_modules() if name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return next(name for name, finite in seen if not finite)


def test_d_a_forward_pass_that_overflows_warns_naming_the_layer():
    torch.manual_seed(0)
    layers = []
    for _ in range(60):
        lin = nn.Linear(3, 3).double()
        with torch.no_grad():
            lin.weight.copy_(torch.eye(3, dtype=torch.float64) * 1e6
                             + torch.rand(3, 3, dtype=torch.float64) * 1e5)
            lin.bias.fill_(1.0)
        layers += [lin, nn.ReLU()]
    model = nn.Sequential(*layers)
    X = np.random.default_rng(0).uniform(size=(3, 3))
    layer = _first_overflowing_relu(model, torch.as_tensor(X))
    with pytest.warns(RuntimeWarning) as record:
        ReLURankRegions(model).fit(X)
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert f"the pre-activation of layer '{layer}' overflows float64 (inf or NaN) on 3 " \
        "input(s), first at [0, 1, 2]" in messages[0]
    # The Jacobian factors after it have NaN entries too: said once, with the cause.
    assert all("forward pass overflows (see the warning above)" in m for m in messages[1:])
    # Scaled down by 2**-20 per layer, the same network neither overflows nor warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReLURankRegions(scaled_twin(model, 2.0 ** -20)).fit(X)


class DeepSkip(nn.Module):
    """60 permutations times 2**23, then a layer that sees the input again (its factor is
    pushed from the input through all 60 segments: 2**1380 overflows, rescaled or not)."""

    def __init__(self):
        super().__init__()
        self.body = _permutation_chain(60, 3, 2.0 ** 23, bias=None)
        self.fc, self.out = nn.Linear(6, 4, bias=False).double(), nn.ReLU()
        with torch.no_grad():
            self.fc.weight.uniform_(0.5, 1.0)

    def forward(self, x):
        return self.out(self.fc(torch.cat([self.body(x), x], dim=1)))


def test_d_a_map_that_overflows_in_every_push_warns_naming_the_layer():
    X = np.random.default_rng(0).uniform(0.5, 1.0, size=(3, 3)) * 2.0 ** -1000
    model = DeepSkip()
    with pytest.warns(RuntimeWarning, match="linear map from the input to layer\\(s\\) 'out' "
                                            "\\(1 region\\(s\\)\\) has inf"):
        got = engine_ranks(model, X)
    np.testing.assert_array_equal(got[:, :60], 3)  # the chain itself is carried rescaled
