"""Rank decomposition of ReLU networks (study B of the research notes).

A ReLU network is a continuous piecewise-affine map. On the linear region of an input x the map
from the input to the output of the l-th ReLU layer is affine with matrix

    A_l(x) = D_l W_l D_{l-1} W_{l-1} ... D_1 W_1,      D_k = diag(pattern_k(x)),

where ``pattern_k(x)`` is the 0/1 vector ``pre-activation_k(x) > 0``. Its rank (the *cumulative
rank* at layer l) tells whether the network can change the topology of the data there: where the
rank is below the input dimension the map is not injective on that region.

:class:`ReLURankRegions` samples regions with the given inputs (it does not enumerate them:
regions no input falls into are not seen), deduplicates activation patterns exactly, and computes
the rank of ``A_l`` once per distinct region and layer, batched in torch on the CPU or CUDA.
"""

import contextlib
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sktopo._base import NoBoolNumbers
from sktopo._device import resolve_device, torch_dtype, torch_threads
from sktopo.nn._capture import prepared_model
# the engine at import (torch.func, scipy.sparse; with sktopo.nn._relu_network, torch's own
# forward-AD modules): the first fit of a process costs what the next ones cost
from sktopo.nn._relu_engine import RankEngine, matrix_rank
from sktopo.nn._relu_network import (
    ReLUTracer,
    _dual_level,
    check_piecewise_linear,
    max_pool_names,
    modules_called,
)
from sktopo.nn._relu_patterns import (
    cumulative_hashes,
    local_codes,
    pack_pattern,
    unique_regions,
    unpack_pattern,
)

_FEATURES = ("rank", "active", "kernel_dim", "region")
# Number of merged regions on which affine consistency is verified (see _check_consistency).
_N_CONSISTENCY_CHECKS = 256


class ReLURankRegions(NoBoolNumbers, TransformerMixin, BaseEstimator):
    """Cumulative rank of a ReLU network's linear map on the region of each input.

    For every input and every ReLU layer l (in the order the ReLUs run), computes the rank of the
    linear part ``D_l W_l ... D_1 W_1`` of the map from the input to the output of layer l on the
    input's linear region (biases do not enter), the number of active units, the kernel
    dimension ``input dimension - rank`` and a region id.

    Parameters
    ----------
    model : torch.nn.Module
        A network made of Linear / Conv layers, ``nn.ReLU`` modules and affine modules (Flatten,
        AvgPool, BatchNorm and Dropout in eval mode, ...), e.g. an ``nn.Sequential``. ReLU layers
        are found with forward hooks on ``nn.ReLU`` modules (a module called k times is k
        layers, named ``name``, ``name#2``, ...). Functional calls (``F.relu``, ``torch.tanh``
        in a ``forward``) are invisible to hooks: when they make merged regions inconsistent a
        ValueError is raised, but a network whose sampled regions are all singletons is not
        checked. Modules of other activations (Tanh, GELU, Sigmoid, ELU, LeakyReLU, Softplus,
        ...), fractional max pooling and LP pooling are refused with a ValueError naming
        them. Max pooling (``nn.MaxPool*d``, ``nn.AdaptiveMaxPool*d``) is piecewise linear:
        the argmax index of each window (torch's choice on ties) is part of the region, so
        two inputs share a region only when their ReLU patterns and the argmax indices of the
        pooling calls before each layer agree, and ranks are exact. The model is never
        modified: it is run in eval mode (its training flags are restored) and copied when
        ``dtype`` or ``device`` differ from its own.
    rank_tol : float or None, default=None
        Singular values above ``rank_tol`` count towards the rank (``tol`` of
        ``numpy.linalg.matrix_rank``). None uses numpy's default, ``S.max() * max(M, N) * eps``
        with ``M x N`` the shape of ``A_l`` (units x input dimension) and ``eps`` of ``dtype``.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the forward passes and of the singular values. float32 ranks can be wrong
        for ill-conditioned maps; float64 ranks match float64 Jacobian ranks.
    low_rank : int or None, default=None
        A region is *low rank* at layer l when its rank is below ``low_rank``; None means below
        the input dimension (the map is not injective there).
    device : str or torch.device, default="auto"
        "auto" picks CUDA when available, else the CPU.
    batch_size : int, default=4096
        Rows per forward pass; it bounds the memory (about ``batch_size`` times the widest
        layer's units per step). The rank pass carries per region a factor of at most ``input
        dimension`` columns (``min(input dimension, units of the first ReLU layer)`` for a
        dense first layer), so it processes ``batch_size`` factor columns' worth of regions at
        a time.
    n_threads : int, default=None
        torch intra-op threads while the network runs (fit, transform and the tables of new
        inputs; restored afterwards); None keeps torch's setting. On a machine that also runs
        other jobs, 1 avoids more threads than free cores (the CLI uses 1).
    verbose : int, default=0
        Show progress bars (tqdm) when positive.

    Attributes
    ----------
    layer_names_ : list of str
        ReLU layers in the order they run.
    n_units_ : pandas.Series
        Units (output elements) per ReLU layer.
    input_shape_ : tuple of int
        Shape of one input (without the batch dimension).
    n_features_in_ : int
        Input dimension (product of ``input_shape_``).
    feature_names_in_ : ndarray of str
        Column names of X when fitted on a DataFrame.
    low_rank_ : int
        The level used: ``low_rank`` or the input dimension.
    data_rank_ : int
        Rank of the fitted inputs: the dimension of the affine span of their flattened rows
        (``numpy.linalg.matrix_rank`` of the centred rows in float64). Coordinates that are
        constant over the data (the always-zero pixels of the digits) do not count; it bounds
        the rank deficits of :meth:`summary`.
    device_ : str
        Device used.
    regions_ : pandas.DataFrame
        :meth:`region_table` of the fitted inputs.
    summary_ : pandas.DataFrame
        :meth:`summary` of the fitted inputs.

    Notes
    -----
    The region id at layer l is a deterministic 64-bit hash of the activation pattern of layers
    1..l (the linear region of the map input -> layer l); the id at the last layer identifies
    the full region. In exact arithmetic ranks are non-increasing with depth along a chain of
    layers. The number of active units bounds the rank from above. The ranks are computed
    without forming ``A_l``: a factor with the same singular values is carried from layer to
    layer (see ``sktopo/nn/_relu_engine.py``), and the rank rule is numpy's on the full
    ``A_l``. Regions are sampled by the inputs, not enumerated (exact counting is
    #P-hard): small regions can be missed.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sktopo import ReLURankRegions
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU())
    >>> X = np.random.default_rng(0).normal(size=(20, 2))
    >>> ranks = ReLURankRegions(net).fit(X).summary_["min_rank"]
    >>> int(ranks.iloc[0])
    0
    """

    _parameter_constraints = {
        "model": "no_validation",
        "rank_tol": [Interval(Real, 0, None, closed="left"), None],
        "dtype": [StrOptions({"float64", "float32"})],
        "low_rank": [Interval(Integral, 0, None, closed="left"), None],
        "device": "no_validation",
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(self, model, *, rank_tol=None, dtype="float64", low_rank=None, device="auto",
                 batch_size=4096, n_threads=None, verbose=0):
        self.model = model
        self.rank_tol = rank_tol
        self.dtype = dtype
        self.low_rank = low_rank
        self.device = device
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.verbose = verbose

    # ------------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Find the ReLU layers, check the network, and analyse the regions of X.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_inputs, ...)
            Inputs, as the model takes them (e.g. (n, d) for an MLP, (n, C, H, W) for a CNN).
            A DataFrame's index labels the inputs in every output.
        y : None
            Ignored.

        Returns
        -------
        self : ReLURankRegions
        """
        self._fit_features = self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None, **fit_params):
        """Fit on X and return its per-input table, computing the regions once."""
        # set_output wraps fit_transform like transform; input_table() reads the features
        self._fit_features = self._fit(X)
        return self._fit_features

    def _fit(self, X):
        import torch

        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(
                f"model must be a torch.nn.Module, got {type(self.model).__name__}.")
        self.device_ = resolve_device(self.device, owner="ReLURankRegions")
        index, x = self._check_X(X, reset=True)
        self._fit_index = index  # input_table() of the fitted inputs
        with self._prepared_model() as model:
            try:
                called = modules_called(model, x[:2])
            except Exception as exc:  # torch raises many types on shape mismatches
                raise ValueError(
                    f"The model could not run on inputs of shape {tuple(x.shape[1:])}: "
                    f"{type(exc).__name__}: {exc}. Pass X shaped as the model expects "
                    "(n_inputs, ...)."
                ) from exc
            self._relu_module_names = check_piecewise_linear(called)
            self._pool_module_names = max_pool_names(called)
            names, patterns, _ = ReLUTracer(model, self._relu_module_names).patterns(x[:1])
            self.layer_names_ = names
            self.n_units_ = pd.Series([p.shape[1] for p in patterns], index=pd.Index(
                names, name="layer"), name="units")
            self.low_rank_ = self.n_features_in_ if self.low_rank is None else int(self.low_rank)
            result = self._analyse(model, x, index)
        self._fit_words = result.words  # layer_codes() of the fitted inputs
        self.data_rank_ = result.data_rank
        self.regions_ = result.region_table()
        self.summary_ = result.summary()
        return result.features()

    def transform(self, X):
        """Per-input ranks, active units, kernel dimensions and region ids per ReLU layer.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_inputs, ...)

        Returns
        -------
        features : ndarray of shape (n_inputs, 4 * n_layers), int64
            Columns ``"{layer}__rank"``, ``"{layer}__active"``, ``"{layer}__kernel_dim"``,
            ``"{layer}__region"`` per layer (see :meth:`get_feature_names_out`). With
            ``set_output(transform="pandas")`` a DataFrame indexed like X.
        """
        check_is_fitted(self)
        return self._analyse_inputs(X).features()

    def region_table(self, X=None):
        """One row per distinct (full) activation region among the inputs.

        Parameters
        ----------
        X : array-like, optional
            Inputs; None gives the table of the fitted inputs (``regions_``).

        Returns
        -------
        table : pandas.DataFrame
            Indexed by ``region`` (the id of the full pattern), sorted by number of inputs
            (largest first), with columns ``n_inputs``, ``first_input`` (label of its first
            input), ``"{layer}__rank"`` and ``"{layer}__active"`` per layer, ``min_rank`` and
            ``first_low_rank_layer`` (the first layer whose rank is below ``low_rank_``,
            missing (NaN) when there is none).
        """
        check_is_fitted(self)
        if X is None:
            return self.regions_.copy()
        return self._analyse_inputs(X).region_table()

    def summary(self, X=None):
        """Per-layer summary: ranks, active units, regions and low-rank fractions.

        Parameters
        ----------
        X : array-like, optional
            Inputs; None gives the summary of the fitted inputs (``summary_``).

        Returns
        -------
        table : pandas.DataFrame
            Indexed by layer, with columns ``units``, ``min_rank``, ``mean_rank``,
            ``max_rank``, ``mean_active``, ``mean_rank_deficit`` and
            ``frac_inputs_rank_deficient`` (see below), ``n_regions`` (distinct patterns up to
            that layer), ``frac_inputs_low_rank`` and ``frac_regions_low_rank`` (rank below
            ``low_rank_``), and ``n_local_codes`` (distinct activation patterns of that layer
            alone, see :meth:`layer_codes`).

        Notes
        -----
        The *rank deficit* of an input at layer l is what its rank lost against the most the
        layer could have: ``min(units of l, rank at the ReLU layer before, rank of the data)``
        minus its rank at l (never negative; the data's rank is that of the inputs analysed,
        ``data_rank_`` for the fitted ones; the first layer is bounded by its units and the
        data). A network that narrows below its input width is low rank at every layer for
        every input (``frac_inputs_low_rank`` is 1), while its deficit counts only the
        directions a layer drops that its width and the layers before would have kept, and
        coordinates constant over the data (dead inputs) cost nothing. With skip connections
        the layer before does not bound the rank; the deficit is then counted against it all
        the same.
        """
        check_is_fitted(self)
        if X is None:
            return self.summary_.copy()
        return self._analyse_inputs(X).summary()

    def resolve_layer(self, layer=None):
        """Name of a ReLU layer given by name, position or None (the last ReLU layer).

        Parameters
        ----------
        layer : str, int or None, default=None
            A name of ``layer_names_``, a position in it (negative counts from the end), or
            None for the last ReLU layer (the smallest cumulative rank: ranks never grow
            with depth).

        Returns
        -------
        name : str
        """
        check_is_fitted(self)
        names = self.layer_names_
        if layer is None:
            return names[-1]
        if isinstance(layer, str):
            if layer not in names:
                raise ValueError(f"ReLURankRegions: layer={layer!r} is not a ReLU layer of the "
                                 f"model; its ReLU layers are {names}.")
            return layer
        if isinstance(layer, (Integral, np.integer)) and not isinstance(layer, bool):
            if not -len(names) <= layer < len(names):
                raise ValueError(f"ReLURankRegions: layer={layer} is out of range for the "
                                 f"{len(names)} ReLU layers {names}.")
            return names[int(layer)]
        raise ValueError(f"ReLURankRegions: layer must be a layer name, a position or None, "
                         f"got {layer!r}.")

    def input_table(self, X=None, *, layer=None):
        """Per-input rank, active units, kernel dimension and region id at one ReLU layer.

        Parameters
        ----------
        X : array-like, optional
            Inputs; None gives the table of the fitted inputs (no new computation).
        layer : str, int or None, default=None
            See :meth:`resolve_layer`; None is the last ReLU layer.

        Returns
        -------
        table : pandas.DataFrame
            Indexed like X (the fitted inputs' index for ``X=None``), with columns ``rank``,
            ``active``, ``kernel_dim``, ``region`` (the id of the pattern of layers 1..layer)
            and ``low_rank`` (rank below ``low_rank_``). ``table.attrs["layer"]`` is the
            layer's name.
        """
        check_is_fitted(self)
        name = self.resolve_layer(layer)
        if X is None:
            features, index = self._fit_features, self._fit_index
        else:
            index, _ = self._check_X(X, reset=False)
            features = self._analyse_inputs(X).features()
        position = self.layer_names_.index(name)
        width = len(_FEATURES)
        block = np.asarray(features)[:, position * width:(position + 1) * width]
        table = pd.DataFrame(block, columns=list(_FEATURES), index=index)
        table["low_rank"] = table["rank"] < self.low_rank_
        table.attrs["layer"] = name
        return table

    def layer_codes(self, X=None, *, layer=None, return_patterns=False):
        """Per-input codeword of the activation pattern of one ReLU layer alone ("local").

        The region id (see :meth:`input_table`) names the pattern of layers 1..l together;
        the local codeword names only layer l's own 0/1 pattern ``pre-activation_l > 0``, so
        inputs in different regions share it when they agree at layer l.

        Parameters
        ----------
        X : array-like, optional
            Inputs; None gives the codewords of the fitted inputs (no new computation).
        layer : str, int or None, default=None
            See :meth:`resolve_layer`; None is the last ReLU layer.
        return_patterns : bool, default=False
            Also return the 0/1 patterns themselves.

        Returns
        -------
        codes : pandas.Series of int64
            Indexed like X (the fitted inputs' index for ``X=None``), named ``"local_code"``:
            0, 1, ... numbered in order of first appearance among the inputs of this call;
            two inputs have the same code exactly when their patterns at the layer are equal
            (deduplicated bit by bit, no hash collision). ``codes.attrs["layer"]`` is the
            layer's name.
        patterns : ndarray of shape (n_inputs, units), bool
            Only with ``return_patterns=True``: the pattern of each input at the layer (units
            in the order of the layer's flattened output).
        """
        check_is_fitted(self)
        name = self.resolve_layer(layer)
        position = self.layer_names_.index(name)
        if X is None:
            words, index = self._fit_words[position], self._fit_index
        else:
            index, _ = self._check_X(X, reset=False)
            words = self._analyse_inputs(X).words[position]
        # Only the ReLU bits (max-pooling indices follow them, see _analyse).
        units = int(self.n_units_.iloc[position])
        words = words[:, :max(1, -(-units // 64))]
        codes, _ = local_codes(words)
        codes = pd.Series(codes, index=index, name="local_code")
        codes.attrs["layer"] = name
        if return_patterns:
            return codes, unpack_pattern(words, units)
        return codes

    def network_output(self, X):
        """The network's output on X, computed in ``dtype`` on ``device_``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_inputs, ...)

        Returns
        -------
        outputs : ndarray of shape (n_inputs, n_outputs), float64
            The model's output per input, flattened.
        """
        import torch

        check_is_fitted(self)
        _, x = self._check_X(X, reset=False)
        with self._prepared_model() as model, torch.no_grad():
            out = torch.cat([model(x[i:i + self.batch_size])
                             for i in range(0, x.shape[0], self.batch_size)])
        return out.reshape(out.shape[0], -1).cpu().numpy().astype(np.float64)

    def get_feature_names_out(self, input_features=None):
        """Names of the :meth:`transform` columns: ``"{layer}__{feature}"``."""
        check_is_fitted(self)
        return np.asarray([f"{layer}__{feature}" for layer in self.layer_names_
                           for feature in _FEATURES], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ internals
    def _check_X(self, X, *, reset):
        """Validate X; return (index, tensor on device_ in dtype)."""
        import torch

        index = X.index if isinstance(X, (pd.DataFrame, pd.Series)) else None
        if isinstance(X, pd.DataFrame):
            columns = np.asarray(X.columns, dtype=object)
            if reset:
                self.feature_names_in_ = columns
            elif hasattr(self, "feature_names_in_") and not np.array_equal(
                    columns, self.feature_names_in_):
                raise ValueError(
                    "X has columns different from those seen in fit; pass the same columns "
                    "in the same order.")
            X = X.to_numpy()
        elif reset and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be numeric, array-like or a tensor: {exc}") from exc
        if X.ndim < 2:
            raise ValueError(
                f"X must have shape (n_inputs, ...) with at least 2 dimensions, got shape "
                f"{X.shape}; reshape a single input with X[None] and a 1-D feature with "
                "X.reshape(-1, 1).")
        if X.shape[0] == 0:
            raise ValueError("X has no inputs (shape {}).".format(X.shape))
        bad = ~np.isfinite(X.reshape(X.shape[0], -1)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            labels = list(index[rows[:5]]) if index is not None else list(rows[:5])
            raise ValueError(
                f"X contains NaN or infinity in {rows.size} input(s), first at {labels}. "
                "Remove or impute them before computing ranks.")
        if reset:
            self.input_shape_ = tuple(X.shape[1:])
            self.n_features_in_ = int(np.prod(self.input_shape_))
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(
                f"X has inputs of shape {tuple(X.shape[1:])}, but ReLURankRegions was fitted "
                f"on inputs of shape {self.input_shape_}.")
        if index is None:
            index = pd.RangeIndex(X.shape[0], name=None)
        if not X.flags.writeable:  # torch warns on read-only arrays (DataFrame views)
            X = X.copy()
        return index, torch.as_tensor(X, dtype=self._torch_dtype(), device=self.device_)

    def _torch_dtype(self):
        return torch_dtype(self.dtype, owner="ReLURankRegions")

    @contextlib.contextmanager
    def _prepared_model(self):
        """The model on device_ and dtype in eval mode (sktopo.nn._capture.prepared_model: a
        cast copy when the dtype differs; flags, device and gradients restored), run on
        ``n_threads`` torch threads."""
        with torch_threads(self.n_threads), prepared_model(
                self.model, self.device_, dtype=self._torch_dtype(),
                owner="ReLURankRegions") as model:
            yield model

    def _analyse_inputs(self, X):
        """Check ``X`` against the fit and analyse it (one copy of the model, if any)."""
        index, x = self._check_X(X, reset=False)
        with self._prepared_model() as model:
            return self._analyse(model, x, index)

    def _analyse(self, model, x, index):
        """Patterns, dedup, ranks: everything the three tables need (``model`` prepared)."""
        import torch

        n = x.shape[0]
        progress = _progress(self.verbose)
        tracer = ReLUTracer(model, self._relu_module_names, n_calls=len(self.layer_names_),
                            pool_names=self._pool_module_names)
        words = [[] for _ in self.layer_names_]
        active = [[] for _ in self.layer_names_]
        nonfinite = [[] for _ in self.layer_names_]
        starts = range(0, n, self.batch_size)
        for start in progress(starts, desc="activation patterns"):
            names, patterns, _ = tracer.patterns(x[start:start + self.batch_size])
            if names != self.layer_names_:
                raise ValueError(
                    f"The ReLU layers that ran ({names}) differ from those found in fit "
                    f"({self.layer_names_}); ReLURankRegions needs a fixed architecture.")
            for layer, pattern in enumerate(patterns):
                active[layer].append(pattern.sum(1).cpu().numpy())
                nonfinite[layer].append(tracer.nonfinite[layer].cpu().numpy())
                # The argmax indices of the max pooling before this layer follow its packed
                # ReLU bits (unpack_pattern(words, units) reads only those).
                words[layer].append(np.concatenate(
                    [pack_pattern(pattern.cpu().numpy())]
                    + [idx.cpu().numpy().astype(np.uint64) for idx in tracer.pool_indices[layer]],
                    axis=1))
        overflowed = self._warn_forward_overflow([np.concatenate(b) for b in nonfinite], index)
        words = [np.concatenate(w) for w in words]
        active = np.stack([np.concatenate(a) for a in active], axis=1).astype(np.int64)
        hashes = cumulative_hashes(words)
        all_words = np.concatenate(words, axis=1)
        region_hash, first, inverse = unique_regions(hashes[:, -1], all_words)
        region_ranks = self._region_ranks(tracer, x[torch.as_tensor(first, device=x.device)],
                                          [w[first] for w in words], progress,
                                          forward_overflow=overflowed)
        self._check_consistency(tracer, x, words, first, inverse, n)
        return _Analysis(self, index, hashes, active, region_hash, first, inverse, region_ranks,
                         words, data_rank=_data_rank(x))

    def _region_ranks(self, tracer, reps, rep_words, progress, forward_overflow=False):
        """(R, L) ranks of A_l on each region (one representative input per row of ``reps``).

        Carried layer to layer by :class:`sktopo.nn._relu_engine.RankEngine` (a factor with the
        singular values of ``A_l``, never a full ``units x d`` product per region); the rank
        rule is numpy's on the full product (see that module).
        """
        engine = RankEngine(tracer.model, self._relu_module_names, self.n_units_.to_numpy(),
                            self.input_shape_, rank_tol=self.rank_tol,
                            batch_size=self.batch_size, progress=progress,
                            region_dependent_segments=bool(self._pool_module_names))
        ranks = engine.ranks(reps, rep_words)
        if engine.overflow:
            layers = ", ".join(f"{self.layer_names_[l]!r} ({n} region(s))"
                               for l, n in sorted(engine.overflow.items()))
            cause = (
                "the forward pass overflows (see the warning above), and forward-mode "
                "derivatives through an inf or NaN value are NaN" if forward_overflow else
                "it leaves the range of the dtype even when pushed one segment at a time from "
                "a factor rescaled by a power of two")
            warnings.warn(
                f"ReLURankRegions: the linear map from the input to layer(s) {layers} has inf, "
                f"NaN or subnormal entries in {self.dtype}: {cause}. The rank reported there "
                "is not reliable (0 where an entry is not finite). Rescale the weights (in a "
                "chain, one layer's weights and the biases from that layer on times a positive "
                "constant leave the regions and the default-tolerance ranks unchanged)"
                + (" or use dtype='float64'." if self.dtype != "float64" else "."),
                RuntimeWarning, stacklevel=4)
        return ranks

    def _warn_forward_overflow(self, nonfinite, index):
        """Warn when the network's own forward pass overflows before a ReLU layer.

        ``nonfinite[l]`` is the (n,) bool of inputs whose pre-activation of layer l has an inf
        or NaN entry. Their patterns from the first such layer on are those of inf and NaN
        values (NaN counts as inactive), not of the network's real pre-activations: no
        rescaling of the Jacobian factors can repair that.
        """
        hit = [l for l, b in enumerate(nonfinite) if b.any()]
        if not hit:
            return False
        first = hit[0]
        rows = np.flatnonzero(nonfinite[first])
        labels = np.asarray(index)[rows[:5]].tolist()
        warnings.warn(
            f"ReLURankRegions: the pre-activation of layer {self.layer_names_[first]!r} "
            f"overflows {self.dtype} (inf or NaN) on {rows.size} input(s), first at {labels}"
            + (f", and of {len(hit) - 1} later layer(s)" if len(hit) > 1 else "")
            + ". The network's own forward pass overflows there, so those inputs' activation "
            "patterns, regions and ranks from that layer on are not the network's (NaN counts "
            "as inactive). Scale the inputs or the weights down (in a chain, one layer's "
            "weights and the biases from that layer on times a positive constant leave the "
            "regions and the default-tolerance ranks unchanged)"
            + (" or use dtype='float64'." if self.dtype != "float64" else "."),
            RuntimeWarning, stacklevel=4)
        return True

    def _matrix_rank(self, matrices):
        """Batched numpy-style matrix rank of (k, M, N) matrices (``rank_tol`` or numpy's tol).

        A Cholesky certificate settles the clearly full-rank matrices; the others go to the
        SVD (see :func:`sktopo.nn._relu_engine.matrix_rank`).
        """
        import torch

        k, rows, cols = matrices.shape
        full = torch.full((k,), rows, dtype=torch.int64, device=matrices.device)
        return matrix_rank(matrices, full, torch.full_like(full, cols), (rows, cols),
                           self.rank_tol)

    def _check_consistency(self, tracer, x, words, first, inverse, n):
        """Raise when merged regions are not affine: hidden (functional) nonlinearities.

        For up to 256 inputs x that share a region with its representative r, the layer
        outputs must satisfy h_l(x) = h_l(r) + A_l (x - r). A ReLU pattern recorded by hooks
        that misses a functional ReLU/tanh merges inputs the network treats differently.
        """
        import torch
        import torch.autograd.forward_ad as fwAD

        members = np.flatnonzero(np.arange(n) != first[inverse])
        if members.size == 0:
            return
        members = members[np.linspace(0, members.size - 1, min(members.size,
                                                              _N_CONSISTENCY_CHECKS)).astype(int)]
        reps = first[inverse[members]]
        member_t = torch.as_tensor(members, device=x.device)
        rep_t = torch.as_tensor(reps, device=x.device)
        units = self.n_units_.to_numpy()
        masks = [torch.as_tensor(unpack_pattern(w[reps], m), device=x.device)
                 for w, m in zip(words, units)]
        predicted, actual = {}, {}
        with _dual_level():
            dual = fwAD.make_dual(x[rep_t], x[member_t] - x[rep_t])
            tracer.frozen(dual, masks, lambda call, y: predicted.__setitem__(
                call, sum(fwAD.unpack_dual(y)[:2]).reshape(len(members), -1)))
        tracer.frozen(x[member_t], masks, lambda call, y: actual.__setitem__(
            call, y.reshape(len(members), -1)))
        tol = 1e-6 if self.dtype == "float64" else 1e-3
        for call, name in enumerate(self.layer_names_):
            p, a = predicted[call], actual[call]
            scale = 1.0 + torch.maximum(p.abs().amax(dim=1), a.abs().amax(dim=1))
            err = (p - a).abs().amax(dim=1) / scale
            if bool((err > tol).any()):
                worst = int(err.argmax())
                raise ValueError(
                    f"Inputs {int(members[worst])} and {int(reps[worst])} share an activation "
                    f"pattern but the map to layer {name!r} is not affine between them "
                    f"(relative error {float(err[worst]):.2e}). The network probably applies a "
                    "nonlinearity that forward hooks cannot see (F.relu, torch.tanh, ... inside "
                    "a forward method); replace it by an nn.ReLU module.")


class _Analysis:
    """Per-input and per-region results of one analysis; builds the three tables."""

    def __init__(self, est, index, hashes, active, region_hash, first, inverse, region_ranks,
                 words, data_rank):
        self.est, self.index = est, index
        self.data_rank = data_rank
        self.words = words  # per layer, (n, W) packed patterns
        self.hashes, self.active = hashes, active
        self.region_hash, self.first, self.inverse = region_hash, first, inverse
        self.region_ranks = region_ranks
        self.ranks = region_ranks[inverse]

    def features(self):
        d = self.est.n_features_in_
        blocks = np.stack([self.ranks, self.active, d - self.ranks, self.hashes], axis=2)
        return blocks.reshape(self.ranks.shape[0], -1)

    def region_table(self):
        est, names = self.est, self.est.layer_names_
        counts = np.bincount(self.inverse, minlength=self.region_hash.size)
        table = {"n_inputs": counts, "first_input": np.asarray(self.index)[self.first]}
        for layer, name in enumerate(names):
            table[f"{name}__rank"] = self.region_ranks[:, layer]
        for layer, name in enumerate(names):
            table[f"{name}__active"] = self.active[self.first, layer]
        table["min_rank"] = self.region_ranks.min(axis=1)
        low = self.region_ranks < est.low_rank_
        table["first_low_rank_layer"] = [names[row.argmax()] if row.any() else None
                                         for row in low]
        frame = pd.DataFrame(table, index=pd.Index(self.region_hash, name="region"))
        # Largest regions first, ties in order of first appearance among the inputs.
        order = np.lexsort((self.first, -counts))
        return frame.iloc[order]

    def summary(self):
        est, n = self.est, self.ranks.shape[0]
        low = self.ranks < est.low_rank_
        rows = []
        relu_words = [max(1, -(-int(u) // 64)) for u in est.n_units_]  # pool indices follow
        # the most each layer could have: its units, the rank before it, the data's rank
        units = est.n_units_.to_numpy()
        before = np.column_stack([np.full(n, self.data_rank), self.ranks[:, :-1]])
        bound = np.minimum(np.minimum(units[None, :], before), self.data_rank)
        deficit = np.maximum(bound - self.ranks, 0)
        for layer, name in enumerate(est.layer_names_):
            # Regions at this layer = distinct patterns up to it; the rank is constant there.
            _, first = np.unique(self.hashes[:, layer], return_index=True)
            rows.append({
                "units": int(est.n_units_.iloc[layer]),
                "min_rank": int(self.ranks[:, layer].min()),
                "mean_rank": float(self.ranks[:, layer].mean()),
                "max_rank": int(self.ranks[:, layer].max()),
                "mean_active": float(self.active[:, layer].mean()),
                "mean_rank_deficit": float(deficit[:, layer].mean()),
                "frac_inputs_rank_deficient": float((deficit[:, layer] > 0).mean()),
                "n_regions": int(first.size),
                "frac_inputs_low_rank": float(low[:, layer].sum() / n),
                "frac_regions_low_rank": float(low[first, layer].mean()),
                "n_local_codes": int(local_codes(self.words[layer][:, :relu_words[layer]])[1].size),
            })
        return pd.DataFrame(rows, index=pd.Index(est.layer_names_, name="layer"))


def _data_rank(x):
    """Dimension of the affine span of the rows of ``x`` (flattened), in float64."""
    import torch

    rows = x.reshape(x.shape[0], -1).detach().to("cpu", dtype=torch.float64).numpy()
    return int(np.linalg.matrix_rank(rows - rows.mean(axis=0))) if len(rows) > 1 else 0


def _progress(verbose):
    if not verbose:
        return lambda iterable, desc=None: iterable
    from tqdm.auto import tqdm

    return lambda iterable, desc=None: tqdm(iterable, desc=desc)
