"""The carried-factor rank engine of ReLURankRegions against independent float64 references.

References: per-input float64 Jacobians with ``numpy.linalg.matrix_rank`` (any network;
``sktopo.nn._relu_reference``, shared with benchmarks/relu.py), and
``numpy.linalg.matrix_rank`` of the explicit weight product when every unit is active.
"""

import numpy as np
import pytest
import torch
from torch import nn

from sktopo.nn._relu_engine import _compact, matrix_rank
from sktopo.nn._relu_reference import jacobian_ranks
from sktopo.nn.random_networks import random_relu_mlp
from sktopo.nn.relu_rank import ReLURankRegions


def engine_ranks(model, X, all_active=False, **params):
    est = ReLURankRegions(model, **params)
    features = np.asarray(est.fit_transform(X))
    if all_active:
        np.testing.assert_array_equal(features[:, 1::4], np.tile(est.n_units_, (len(X), 1)))
    return features[:, 0::4]


class Residual(nn.Module):
    """conv -> relu -> [conv -> relu -> conv] + skip -> relu, twice; then a linear head."""

    def __init__(self, c=3):
        super().__init__()
        self.stem, self.relu0 = nn.Conv2d(1, c, 3, padding=1), nn.ReLU()
        self.a1, self.r1, self.b1, self.o1 = (nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                              nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.bn = nn.BatchNorm2d(c)
        self.a2, self.r2, self.b2, self.o2 = (nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                              nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.head, self.relu_head = nn.Linear(c * 16, 5), nn.ReLU()

    def forward(self, x):
        h = self.relu0(self.stem(x))
        h = self.o1(self.b1(self.r1(self.a1(h))) + h)
        h = self.bn(h)
        h = self.o2(self.b2(self.r2(self.a2(h))) + h)
        return self.relu_head(self.head(h.flatten(1)))


class InputSkip(nn.Module):
    """A later layer sees the input directly (a DenseNet-like concatenation)."""

    def __init__(self, d=6):
        super().__init__()
        self.fc1, self.r1 = nn.Linear(d, 3), nn.ReLU()
        self.fc2, self.r2 = nn.Linear(3, 2), nn.ReLU()
        self.fc3, self.r3 = nn.Linear(2 + d, 7), nn.ReLU()

    def forward(self, x):
        h = self.r2(self.fc2(self.r1(self.fc1(x))))
        return self.r3(self.fc3(torch.cat([h, x], dim=1)))


@pytest.mark.parametrize("d, widths, scale", [
    (128, [64, 32, 16, 8, 4], 25.0),   # deep and narrow: many rank-deficient regions
    (12, [30, 6, 30, 30], 3.0),        # a bottleneck, then wide again
    (20, [50, 50], 1.0),               # full rank throughout
    (9, [4, 9, 2, 9], 5.0),
])
def test_mlp_ranks_equal_float64_jacobian_ranks(d, widths, scale):
    model = random_relu_mlp(d, widths, 3, random_state=2)
    X = np.random.default_rng(1).uniform(-scale, scale, size=(25, d))
    got = engine_ranks(model, X, batch_size=3 * d)  # several chunks
    np.testing.assert_array_equal(got, jacobian_ranks(model, X))
    assert len(np.unique(got)) > 1


def test_residual_conv_net_ranks_equal_jacobian_ranks():
    torch.manual_seed(0)
    model = Residual()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.5, 2)
    X = np.random.default_rng(0).normal(size=(12, 1, 4, 4))
    got = engine_ranks(model, X, batch_size=40)
    np.testing.assert_array_equal(got, jacobian_ranks(model, X))


def test_skip_from_the_input_falls_back_to_the_input_basis():
    torch.manual_seed(1)
    model = InputSkip()
    X = np.random.default_rng(0).normal(size=(40, 6)) * 3
    got = engine_ranks(model, X)
    want = jacobian_ranks(model, X)
    np.testing.assert_array_equal(got, want)
    # The third layer's rank exceeds the second's: only the input basis gets it right.
    assert (got[:, 2] > got[:, 1]).any()


def test_parents_follow_the_network_structure():
    from sktopo.nn._relu_engine import RankEngine

    torch.manual_seed(0)
    for model, x, want in [
        (Residual().double().eval(), torch.randn(3, 1, 4, 4, dtype=torch.float64),
         [-1, 0, 0, 2, 2, 4]),
        (InputSkip().double().eval(), torch.randn(3, 6, dtype=torch.float64), [-1, 0, -1]),
    ]:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
        est = ReLURankRegions(model).fit(x.numpy())
        engine = RankEngine(model, names, est.n_units_.to_numpy(), est.input_shape_,
                            rank_tol=None, batch_size=64, progress=lambda it, desc=None: it)
        masks = [torch.ones(3, u, dtype=torch.float64) for u in est.n_units_]
        assert engine._parents(x, masks) == want


def _weights_with_singular_values(rng, shape, s):
    u, _ = np.linalg.qr(rng.normal(size=(shape[0], shape[0])))
    v, _ = np.linalg.qr(rng.normal(size=(shape[1], shape[1])))
    m = np.zeros(shape)
    m[:len(s), :len(s)] = np.diag(s)
    return u @ m @ v.T


def _all_active_net(weights):
    """Linear layers with the given weights; biases put every pre-activation at 100 at x = 0,
    so every unit is active near 0 and the Jacobian is the plain weight product."""
    layers, h = [], np.zeros(weights[0].shape[1])
    for w in weights:
        lin = nn.Linear(w.shape[1], w.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(100.0 - w @ h))
        layers += [lin, nn.ReLU()]
        h = np.full(w.shape[0], 100.0)
    return nn.Sequential(*layers)


@pytest.mark.parametrize("rank_tol", [None, 1e-9])
@pytest.mark.parametrize("seed", range(4))
def test_nearly_singular_products_match_numpy_on_the_full_product(seed, rank_tol):
    # Singular values spread around the tolerance (1e-12 ... 1e-17 relative); layer shapes
    # make the carried factor wide (compacted), tall and square. Reference: numpy's
    # matrix_rank of the explicit float64 product W_l ... W_1 (all units active).
    rng = np.random.default_rng(seed)
    d = 8
    spectra = [[1, 1e-3, 1e-6, 1e-10, 1e-12, 1e-14, 1e-17, 0.0],
               [1, 1, 1e-2, 1e-5, 1e-11, 1e-13, 1e-16, 1e-18, 0, 0],
               [1, 1e-1, 1e-9, 1e-15, 1e-16, 0]]
    shapes = [(8, d), (10, 8), (6, 10)]
    weights = [_weights_with_singular_values(rng, sh, rng.permutation(s)[:min(sh)] * 3.0)
               for sh, s in zip(shapes, spectra)]
    model = _all_active_net(weights)
    X = rng.normal(size=(4, d)) * 1e-3
    got = engine_ranks(model, X, all_active=True, rank_tol=rank_tol)
    product, want = np.eye(d), []
    for w in weights:
        product = w @ product
        want.append(np.linalg.matrix_rank(product, tol=rank_tol))
    np.testing.assert_array_equal(got, np.tile(want, (4, 1)))


def test_rank_can_grow_with_depth_by_the_full_product_rule():
    # Layer 1 has a singular value below its tolerance (rank 1); layer 2 scales it up above
    # the tolerance of its own, smaller, product (rank 2). A basis truncated at layer 1 would
    # say 1; the carried factor never drops a direction.
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    v, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    w1 = u @ np.diag([1.0, 1e-17]) @ v.T
    w2 = np.diag([1e-4, 1e14]) @ u.T
    model = _all_active_net([w1, w2])
    X = rng.normal(size=(1, 2)) * 1e-3  # one input: biases of 1e16 defeat the affinity check
    want = [np.linalg.matrix_rank(w1), np.linalg.matrix_rank(w2 @ w1)]
    assert want == [1, 2]
    np.testing.assert_array_equal(engine_ranks(model, X, all_active=True), [want])


def _padded(mats):
    """Matrices zero-padded into one (len, R, C) float64 batch, with their rows and cols."""
    R, C = max(m.shape[0] for m in mats), max(m.shape[1] for m in mats)
    batch = np.zeros((len(mats), R, C))
    for i, m in enumerate(mats):
        batch[i, :m.shape[0], :m.shape[1]] = m
    return (torch.as_tensor(batch), torch.tensor([m.shape[0] for m in mats]),
            torch.tensor([m.shape[1] for m in mats]))


@pytest.mark.parametrize("rank_tol", [None, 1e-8])
def test_padded_batched_rank_equals_numpy(rank_tol):
    rng = np.random.default_rng(0)
    full_shape = (30, 12)
    mats = []
    for rows, cols in [(5, 12), (12, 5), (7, 7), (0, 4), (3, 0), (9, 11), (11, 2), (1, 1)]:
        s = np.geomspace(1.0, 10.0 ** rng.uniform(-18, -2), min(rows, cols))
        m = _weights_with_singular_values(rng, (rows, cols), s) if min(rows, cols) else \
            np.zeros((rows, cols))
        mats.append(m)
    mats.append(np.zeros((4, 6)))
    batch, rows, cols = _padded(mats)
    got = matrix_rank(batch, rows, cols, full_shape, rank_tol).numpy()
    eps = np.finfo(np.float64).eps
    want = []
    for m in mats:
        s = np.linalg.svd(m, compute_uv=False) if m.size else np.zeros(0)
        tol = rank_tol if rank_tol is not None else (s.max(initial=0) * max(full_shape) * eps)
        want.append(int((s > tol).sum()))
    np.testing.assert_array_equal(got, want)


def test_compaction_keeps_singular_values():
    rng = np.random.default_rng(0)
    mats = [rng.normal(size=(3, 7)), rng.normal(size=(6, 4)), rng.normal(size=(5, 7))]
    batch, rows, cols = _padded(mats)
    out, new_cols = _compact(batch, rows, cols)
    assert new_cols.tolist() == [3, 4, 5]
    for i, m in enumerate(mats):
        kept = out[i].numpy()
        assert not kept[m.shape[0]:].any() and not kept[:, new_cols[i]:].any()
        np.testing.assert_allclose(np.linalg.svd(kept, compute_uv=False)[:min(m.shape)],
                                   np.linalg.svd(m, compute_uv=False), rtol=1e-12)


def test_batch_size_does_not_change_ranks():
    model = random_relu_mlp(16, [12, 6, 10], 2, random_state=0)
    X = np.random.default_rng(0).uniform(-4, 4, size=(50, 16))
    runs = [engine_ranks(model, X, batch_size=b) for b in (1, 17, 100000)]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)


def test_conv_net_avgpool_ranks_equal_jacobian_ranks_with_dense_and_pushed_segments():
    from sktopo.nn import _relu_engine

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6 * 9, 12), nn.ReLU(), nn.Linear(12, 3))
    X = np.random.default_rng(2).normal(size=(10, 1, 6, 6))
    want = jacobian_ranks(model, X)
    np.testing.assert_array_equal(engine_ranks(model, X), want)
    limit = _relu_engine._DENSE_LIMIT
    try:
        _relu_engine._DENSE_LIMIT = 0  # every segment pushed through the modules
        np.testing.assert_array_equal(engine_ranks(model, X), want)
    finally:
        _relu_engine._DENSE_LIMIT = limit


def test_chunks_are_copies_not_views(monkeypatch):
    # Forward-mode AD over a view builds tangents over the view's whole base (all regions):
    # every chunk handed to the rank pass must own its memory.
    from sktopo.nn._relu_engine import RankEngine

    seen = []
    original = RankEngine._chunk_ranks

    def spy(self, x, masks):
        seen.append(x._base is None)
        return original(self, x, masks)

    monkeypatch.setattr(RankEngine, "_chunk_ranks", spy)
    model = random_relu_mlp(6, [5, 5], random_state=0)
    ReLURankRegions(model, batch_size=12).fit(np.random.default_rng(0).normal(size=(20, 6)))
    assert len(seen) > 1 and all(seen)


def test_a_chain_of_convolutions_is_pushed_in_one_pass():
    from sktopo.nn._relu_engine import RankEngine

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()).double().eval()
    x = torch.randn(3, 1, 5, 5, dtype=torch.float64)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    engine = RankEngine(model, names, [200, 200, 200], (1, 5, 5), rank_tol=None,
                        batch_size=64, progress=lambda it, desc=None: it)
    masks = [torch.ones(3, 200, dtype=torch.float64) for _ in names]
    engine._shapes = [(8, 5, 5)] * 3
    active = [(torch.arange(200).repeat(3, 1), torch.full((3,), 200)) for _ in names]
    parents = engine._parents(x, masks)
    assert parents == [-1, 0, 1]
    assert engine._sources(x, masks, active, parents) == [-1, -1, -1]
    X = np.random.default_rng(0).normal(size=(6, 1, 5, 5))
    np.testing.assert_array_equal(engine_ranks(model, X), jacobian_ranks(model, X))


@pytest.mark.parametrize("dense_limit", [None, 0])
def test_a_dead_layer_gives_empty_factors_downstream(dense_limit, monkeypatch):
    from sktopo.nn import _relu_engine

    if dense_limit is not None:
        monkeypatch.setattr(_relu_engine, "_DENSE_LIMIT", dense_limit)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 3), nn.ReLU())
    with torch.no_grad():
        model[2].bias.fill_(-100.0)  # the second ReLU layer is never active
    X = np.random.default_rng(0).normal(size=(10, 4))
    got = engine_ranks(model, X)
    np.testing.assert_array_equal(got, jacobian_ranks(model, X))
    assert not got[:, 1:].any() and got[:, 0].all()


@pytest.mark.slow  # 10-13 s on two near-idle cores
def test_large_padded_batches_use_the_blocked_gram_and_still_equal_numpy():
    # Smaller sides above 256 go through the recursive lower-triangle Gram.
    rng = np.random.default_rng(1)
    shapes = [(700, 300), (300, 700), (520, 520), (400, 290)]
    spectra = [np.geomspace(1, 1e-3, 300), np.geomspace(1, 1e-14, 300),
               np.r_[np.ones(500), np.zeros(20)], np.r_[np.geomspace(1, 1e-5, 280),
                                                         np.full(10, 1e-17)]]
    mats = [_weights_with_singular_values(rng, sh, sp) for sh, sp in zip(shapes, spectra)]
    batch, rows, cols = _padded(mats)
    got = matrix_rank(batch, rows, cols, (800, 700)).numpy()
    eps = np.finfo(np.float64).eps
    want = []
    for m in mats:
        sv = np.linalg.svd(m, compute_uv=False)
        want.append(int((sv > sv.max() * 800 * eps).sum()))
    np.testing.assert_array_equal(got, want)
    assert want[0] == 300 and want[2] == 500 and want[3] == 280


def test_greedy_column_colors_never_share_a_colour_within_a_row():
    from sktopo.nn._relu_engine import greedy_column_colors

    rng = np.random.default_rng(0)
    pattern = rng.random((60, 40)) < 0.1
    colors, n = greedy_column_colors(pattern)
    assert colors.shape == (40,) and colors.min() == 0 and colors.max() == n - 1
    for row in pattern:
        assert len(set(colors[row])) == row.sum()
    # A 3 x 3 receptive field on a 10 x 10 image, in raster order: 9 colours.
    image = np.zeros((10, 10, 10, 10), dtype=bool)
    for i in range(10):
        for j in range(10):
            image[i, j, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2] = True
    assert greedy_column_colors(image.reshape(100, 100))[1] == 9


def test_convolutions_pushed_with_coloured_input_tangents_equal_jacobian_ranks(monkeypatch):
    # 10 x 10 inputs: the third layer sees 7 x 7 pixels, so 49 coloured tangents replace 100.
    from sktopo.nn import _relu_engine

    used = []
    original = _relu_engine.RankEngine._input_coloring

    def spy(self, x, ls):
        coloring = original(self, x, ls)
        used.append(None if coloring is None else coloring[0].shape[0])
        return coloring

    monkeypatch.setattr(_relu_engine.RankEngine, "_input_coloring", spy)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    with torch.no_grad():
        model[0].weight.abs_()
    X = np.random.default_rng(3).normal(size=(6, 1, 10, 10))
    X[:3, :, :4, :4] = -10.0  # no first-layer unit sees these pixels: rank-deficient regions
    want = jacobian_ranks(model, X)
    assert want.min() < 100 and want.max() == 100
    np.testing.assert_array_equal(engine_ranks(model, X), want)
    assert any(n is not None and n < 50 for n in used)


# ------------------------------------------------------------------ convolution chains
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


CHAINS = {
    "digits_like": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Conv2d(6, 12, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(12, 3)),
    "stride_dilation_bn": lambda: nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=2, dilation=2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Sequential(nn.Conv2d(6, 24, 3, stride=2, padding=1), nn.Dropout(0.5)), nn.ReLU(),
        nn.Conv2d(24, 40, (2, 3), padding=(0, 1)), nn.ReLU()),
    "pool_padding_no_pad_conv": lambda: nn.Sequential(
        nn.Conv2d(1, 8, 2), nn.ReLU(), nn.AvgPool2d(3, stride=1, padding=1),
        nn.Conv2d(8, 10, 3, padding=1), nn.ReLU(), nn.Identity(),
        nn.Conv2d(10, 12, 3, padding=1), nn.ReLU()),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_conv_chain_certificates_equal_float64_jacobian_ranks(name, monkeypatch):
    counts = chain_counts(monkeypatch)
    torch.manual_seed(0)
    model = CHAINS[name]()
    if name == "stride_dilation_bn":
        with torch.no_grad():
            model[1].running_var.uniform_(0.5, 2.0)
            model[1].running_mean.uniform_(-0.5, 0.5)
        X = np.random.default_rng(1).normal(size=(10, 2, 6, 6))
    else:
        X = np.random.default_rng(1).normal(size=(10, 1, 6, 6))
    want = jacobian_ranks(model, X)
    np.testing.assert_array_equal(engine_ranks(model, X), want)
    assert counts[0] > 0  # the chain path decided some regions


def test_conv_chain_rank_deficient_regions_fall_back_to_the_general_engine(monkeypatch):
    counts = chain_counts(monkeypatch)
    torch.manual_seed(2)
    model = CHAINS["digits_like"]()
    with torch.no_grad():
        model[0].weight.abs_()
    X = np.random.default_rng(3).normal(size=(12, 1, 6, 6))
    X[:5, :, :3, :3] = -20.0  # no first-layer unit sees these pixels: rank-deficient regions
    want = jacobian_ranks(model, X)
    assert want.min() < 36 and want.max() == 36
    np.testing.assert_array_equal(engine_ranks(model, X), want)
    assert counts[1] >= 5 and counts[0] > 0


def test_conv_chain_too_few_units_falls_back(monkeypatch):
    # The last layer has fewer units than inputs: no full column rank to certify.
    counts = chain_counts(monkeypatch)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 1, 3),
                          nn.ReLU())
    X = np.random.default_rng(0).normal(size=(8, 1, 5, 5))
    np.testing.assert_array_equal(engine_ranks(model, X), jacobian_ranks(model, X))
    assert counts[0] == 0


@pytest.mark.parametrize("gap, rank", [(1e-3, 16), (5e-14, 16), (5e-15, 12)])
def test_conv_chain_nearly_singular_last_layer_is_handed_back(gap, rank, monkeypatch):
    # Every unit active, the first layer the identity twice and both output channels the
    # kernel [1, a, 1] along the rows: A_2 = [T; T] / 2 + [T; T] / 2 with T = I (x) tridiag(1,
    # a, 1), whose eigenvalues are a + 2 cos(k pi / 5). With a = gap - 2 cos(2 pi / 5) four
    # singular values of A_2 are sqrt(2) gap and the largest sqrt(2) (gap + 2.236): the rule's
    # threshold (32 eps sigma_max, 2.2e-14) lies between sqrt(2) 5e-14 (rank 16, three times
    # above) and sqrt(2) 5e-15 (rank 12, three times below). The certificate must hand such
    # regions back to the general engine (it cannot separate them from rank 16), and accept
    # a well-conditioned one (gap 1e-3).
    from sktopo.nn import _relu_engine

    counts = chain_counts(monkeypatch)
    general = []
    original = _relu_engine.RankEngine._chunk_ranks

    def spy(self, x, masks):
        general.append(x.shape[0])
        return original(self, x, masks)

    monkeypatch.setattr(_relu_engine.RankEngine, "_chunk_ranks", spy)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()).double()
    a = gap - 2 * np.cos(2 * np.pi / 5)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[:, 0, 1, 1] = 1.0
        model[0].bias.fill_(5.0)
        kernel = torch.tensor([[0, 0, 0], [1, a, 1], [0, 0, 0]], dtype=torch.float64)
        model[2].weight.copy_(kernel.expand(2, 2, 3, 3) / 2)
        model[2].bias.fill_(50.0)  # every unit active: one region, A_2 = W_2 W_1
    X = np.random.default_rng(0).normal(size=(4, 1, 4, 4))
    want = jacobian_ranks(model, X)
    np.testing.assert_array_equal(want, np.tile([16, rank], (4, 1)))
    np.testing.assert_array_equal(engine_ranks(model, X), want)
    if gap > 1e-6:
        assert counts == [1, 0] and general == []  # certified, no general engine
    else:
        assert counts == [0, 1] and general == [1]  # handed back, ranked by the general engine


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Conv2d(1, 4, 3, groups=1), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2),
                  nn.ReLU()),
    nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 1), nn.ReLU()),
    nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 40), nn.ReLU()),
    nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                  nn.Conv2d(4, 4, 3), nn.ReLU()),
])
def test_conv_chain_is_not_built_for_other_modules(model):
    from sktopo.nn._relu_engine import ConvChain

    model = model.double().eval()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    units = [int(np.prod(o.shape[1:])) for o in [model[:2](x), model(x)]]
    assert ConvChain.build(model, names, units, (1, 8, 8), None, x) is None


def test_conv_chain_closed_form_equals_the_tap_pushes():
    # The second layer's windows by the closed form (im2col of the masks) against the taps.
    from sktopo.nn._relu_engine import ConvChain

    torch.manual_seed(0)
    model = CHAINS["digits_like"]().double().eval()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    chain = ConvChain.build(model, names, [144, 216, 108], (1, 6, 6), None, x)
    masks = [(torch.rand(5, u) > 0.4).double() for u in [144, 216, 108]]
    chain.certify(masks)
    assert chain._closed is not None
    fm = [m.reshape(5, s[0], -1).transpose(1, 2) for m, s in zip(masks, chain.shapes)]
    T, geom, hw = chain._first
    seg = chain._segments()[1]
    fast, fgeom, _ = chain._closed_step(fm[0], 5)
    slow, sgeom, _ = chain._tap_step(T * fm[0][:, :, None, None, None, :], geom, hw,
                                     *seg[0][1:], False)
    assert fgeom == sgeom
    # Equal at in-image pixels (the closed form may hold R's entries outside the image).
    rows_f = chain._dense_rows(fast, fgeom, torch.arange(36), 6)
    rows_s = chain._dense_rows(slow, sgeom, torch.arange(36), 6)
    np.testing.assert_allclose(rows_f.numpy(), rows_s.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("rank_tol", [1e-6, 1e3])
def test_conv_chain_with_an_absolute_rank_tol_equals_matrix_rank(rank_tol, monkeypatch):
    # A huge tol makes every rank smaller than d: the certificate must refuse every region.
    counts = chain_counts(monkeypatch)
    torch.manual_seed(0)
    model = CHAINS["digits_like"]()
    X = np.random.default_rng(1).normal(size=(8, 1, 6, 6))
    want = jacobian_ranks(model, X, rank_tol=rank_tol)
    np.testing.assert_array_equal(engine_ranks(model, X, rank_tol=rank_tol), want)
    assert counts[0] <= int((want == 36).all(axis=1).sum())
    if rank_tol > 1:
        assert counts[0] == 0
