"""Layer clouds over training checkpoints: a stage axis for :class:`LayerEmbedder`.

:class:`CheckpointEmbedder` wraps a configured :class:`LayerEmbedder` (the model's
architecture, the layers and every embedding option, set once where they already live) and a
sequence of checkpoints. ``transform(X)`` runs the embedder once per checkpoint, one checkpoint
at a time: load its state dict into a copy of the model, embed, drop the copy. The stages are
concatenated on a new outer ``stage`` level, so the output is an ordinary sktopo collection
that every estimator and :func:`sktopo.tidy` read unchanged.

With ``memory=`` each stage's clouds are stored on disk under a key made of the checkpoint's
content (its file's bytes, or its tensors), the embedder's parameters, the model's architecture
and the data: a sweep that was killed resumes with the stages not yet done, a checkpoint file
rewritten under the same name is recomputed, and nothing else is.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from .._base import FixedOutput, NoBoolNumbers
from .._parallel import N_JOBS, effective_jobs, lazy_parallel
from .._progress import progress
from .embedder import LayerEmbedder

__all__ = ["CheckpointEmbedder", "embed_checkpoints"]

_GLOB_CHARS = re.compile(r"[*?\[]")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# part of every cache key: raise it when a change to the embedding changes stored clouds
_CACHE_FORMAT = 1


# ------------------------------------------------------------------ resolving the checkpoints


def _natural_key(path):
    """Sort ``epoch_2.pt`` before ``epoch_10.pt``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _stage_names(paths):
    """File stems, or the paths themselves where two stems coincide."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p) for p in paths]


def _files(spec):
    """The checkpoint files of a path, folder or glob pattern, in natural order."""
    text = os.fspath(spec)
    if _GLOB_CHARS.search(text):
        paths = sorted((p for p in glob.glob(text, recursive=True) if os.path.isfile(p)),
                       key=_natural_key)
        if not paths:
            raise FileNotFoundError(
                f"CheckpointEmbedder: the pattern {text!r} matches no file (relative to "
                f"{os.getcwd()!r}). Check the folder and the file extension.")
        return paths
    if os.path.isdir(text):
        paths = sorted((str(p) for p in Path(text).iterdir()
                        if p.is_file() and p.suffix in _CHECKPOINT_SUFFIXES), key=_natural_key)
        if not paths:
            raise FileNotFoundError(
                f"CheckpointEmbedder: the folder {text!r} holds no checkpoint file "
                f"({', '.join(_CHECKPOINT_SUFFIXES)}); pass a glob pattern for other names.")
        return paths
    if not os.path.isfile(text):
        raise FileNotFoundError(f"CheckpointEmbedder: no checkpoint file {text!r}.")
    return [text]


def _is_path(item):
    return isinstance(item, (str, os.PathLike))


def _iter_stages(checkpoints):
    """Yield ``(stage name, source)``; a source is a file path, a state dict or a module.

    Files are resolved (and globs expanded) before the first stage is yielded, so a missing
    file stops the sweep before any work.
    """
    if _is_path(checkpoints):
        paths = _files(checkpoints)
        yield from zip(_stage_names(paths), paths)
        return
    if isinstance(checkpoints, Mapping) and not _looks_like_state(checkpoints):
        items = list(checkpoints.items())
        for name, item in items:
            if _is_path(item) and not os.path.isfile(item):
                raise FileNotFoundError(
                    f"CheckpointEmbedder: no checkpoint file {os.fspath(item)!r} "
                    f"(stage {name!r}).")
        yield from ((name, os.fspath(item) if _is_path(item) else item) for name, item in items)
        return
    if callable(checkpoints) and not isinstance(checkpoints, torch.nn.Module):
        checkpoints = checkpoints()
    if isinstance(checkpoints, (torch.nn.Module, Mapping)) or not isinstance(checkpoints,
                                                                           Iterable):
        raise TypeError(
            "CheckpointEmbedder: checkpoints must be a path, a folder, a glob pattern, a list of "
            "paths / state dicts / models, a dict {stage: checkpoint}, or a callable returning "
            f"an iterable of those; got {type(checkpoints).__name__}.")
    if isinstance(checkpoints, (list, tuple)) and checkpoints and all(
            _is_path(item) for item in checkpoints):
        paths = []
        for item in checkpoints:
            paths.extend(_files(item))
        yield from zip(_stage_names(paths), paths)
        return
    for position, item in enumerate(checkpoints):
        if isinstance(item, tuple) and len(item) == 2 and not _is_path(item):
            yield item  # (name, checkpoint)
        elif _is_path(item):
            yield Path(item).stem, os.fspath(_files(item)[0])
        else:
            yield position, item


def _looks_like_state(mapping):
    """A state dict (name -> tensor) rather than a dict of stages."""
    return bool(mapping) and all(isinstance(v, torch.Tensor) for v in mapping.values())


# ------------------------------------------------------------------ reading and checking


def _read_state(path):
    """The state dict in a file, read with ``torch.load(weights_only=True)``; errors name it."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"CheckpointEmbedder: {path!r} is not a plain state dict (it holds pickled Python "
            "objects, e.g. a whole model, which torch.load(weights_only=True) refuses). Save the "
            "weights with torch.save(model.state_dict(), path).") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"CheckpointEmbedder: cannot read {path!r} with torch.load (a corrupt or truncated "
            f"file?): {first}") from None
    return _unwrap(state, repr(path))


def _unwrap(state, where):
    if isinstance(state, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state.get(key), Mapping):
                return state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"CheckpointEmbedder: {where} holds a {type(state).__name__}, not a "
                         "state dict; save model.state_dict().")
    return state


def _listed(keys, limit=5):
    keys = list(keys)
    text = ", ".join(repr(k) for k in keys[:limit])
    return text + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _load_into(model, state, where):
    """``model.load_state_dict(state)``, with an error that names the checkpoint and the keys."""
    expected = list(model.state_dict())
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in set(expected)]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listed(unexpected)}")
        hint = ""
        if unexpected and all(str(k).startswith("module.") for k in unexpected):
            hint = " (saved from a DataParallel wrapper: strip the 'module.' prefix)"
        raise ValueError(
            f"CheckpointEmbedder: the checkpoint {where} does not fit the model: "
            f"{'; '.join(parts)}{hint}. Was it saved from another architecture?")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = "; ".join(lines[1:4]) or lines[0]
        raise ValueError(f"CheckpointEmbedder: the checkpoint {where} does not fit the model "
                         f"({detail}).") from None


# ------------------------------------------------------------------ content keys


def _hasher():
    return hashlib.blake2b(digest_size=20)


def _file_digest(path):
    digest = _hasher()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "file:" + digest.hexdigest()


def _tensor_bytes(tensor):
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _digest(obj, digest):
    """Feed a stable description of ``obj`` into ``digest`` (tensors by their bytes)."""
    import joblib
    import numpy as np

    if isinstance(obj, torch.Tensor):
        digest.update(f"tensor:{obj.dtype}:{tuple(obj.shape)}:".encode())
        digest.update(_tensor_bytes(obj))
    elif isinstance(obj, np.ndarray) and obj.dtype != object:
        digest.update(f"ndarray:{obj.dtype.str}:{obj.shape}:".encode())
        digest.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, Mapping):
        digest.update(f"{type(obj).__name__}{{{len(obj)}:".encode())
        for key, value in obj.items():
            digest.update(repr(key).encode())
            _digest(value, digest)
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)) and not any(
            isinstance(v, (torch.Tensor, np.ndarray, Mapping, list, tuple)) for v in obj):
        digest.update(f"{type(obj).__name__}:{joblib.hash(obj)}".encode())  # texts, numbers
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__}[{len(obj)}:".encode())
        for value in obj:
            _digest(value, digest)
        digest.update(b"]")
    elif isinstance(obj, torch.utils.data.DataLoader):
        digest.update(f"DataLoader:{obj.batch_size}:".encode())
        _digest(obj.dataset, digest)
    elif isinstance(obj, torch.utils.data.TensorDataset):
        _digest(list(obj.tensors), digest)
    else:
        try:
            digest.update(joblib.hash(obj).encode())
        except Exception as error:
            raise TypeError(
                f"CheckpointEmbedder: memory= keys the cache by the data, but X (a "
                f"{type(obj).__name__}) cannot be hashed ({error}). Pass X as an array, a "
                "tensor or a list of texts, or run without memory=.") from None


def _content_key(obj):
    digest = _hasher()
    _digest(obj, digest)
    return digest.hexdigest()


def _source_key(source):
    """The content of one checkpoint: its file's bytes, its tensors, or a model's class and
    state dict."""
    if _is_path(source):
        return _file_digest(source)
    if isinstance(source, torch.nn.Module):
        return "module:" + _content_key([type(source).__qualname__, source.state_dict()])
    return "state:" + _content_key(dict(source))


def _embedder_key(embedder):
    """The embedding settings: every parameter but the weights, and the architecture."""
    import joblib

    params = embedder.get_params(deep=False)
    model = params.pop("model")
    architecture = [type(model).__module__, type(model).__qualname__,
                    [(k, str(v.dtype), tuple(v.shape)) for k, v in model.state_dict().items()]]
    try:
        settings = joblib.hash([type(embedder).__qualname__, params])
    except Exception as error:
        raise TypeError(f"CheckpointEmbedder: memory= needs the embedder's parameters to be "
                        f"hashable: {error}") from None
    return [_CACHE_FORMAT, settings, architecture]


# ------------------------------------------------------------------ one stage


def _embed_stage(embedder, stage, source, X, n_threads):
    """The clouds of one checkpoint: a model with its weights, embedded, then dropped."""
    params = embedder.get_params(deep=False)
    if isinstance(source, torch.nn.Module):
        model = source
    else:
        where = repr(source) if _is_path(source) else f"of stage {stage!r}"
        state = _read_state(source) if _is_path(source) else _unwrap(source, f"stage {stage!r}")
        model = copy.deepcopy(params["model"])
        _load_into(model, state, where)
        del state
    params["model"] = model
    if params.get("n_threads") is None and n_threads is not None:
        params["n_threads"] = n_threads
    return type(embedder)(**params).fit_transform(X)


def _cached_stage(key, job=None):
    """The function ``memory`` caches: its one hashed argument is the stage's key."""
    if job is None:
        raise RuntimeError("CheckpointEmbedder: a cache entry disappeared while the sweep ran; "
                           "run it again.")
    return _embed_stage(*job)


def _check_memory(memory):
    from sklearn.utils.validation import check_memory

    if memory is None:
        return None
    return check_memory(os.fspath(memory) if isinstance(memory, os.PathLike) else memory)


# ------------------------------------------------------------------ the estimator


class CheckpointEmbedder(FixedOutput, NoBoolNumbers, TransformerMixin, BaseEstimator,
                         auto_wrap_output_keys=None):
    """The clouds of a :class:`LayerEmbedder` at every checkpoint of a training run.

    One model, many weights: the embedder holds the architecture and every embedding choice
    (layers, unit, reduce, device, batch size, ...); ``checkpoints`` holds the weights of each
    stage. ``transform(X)`` embeds ``X`` once per checkpoint, one checkpoint at a time (load its
    state dict into a copy of ``embedder.model``, embed, drop the copy), so memory holds one
    extra model per worker whatever the number of stages. The output is the embedder's own
    collection with an outer ``"stage"`` level, so :class:`~sktopo.PersistenceDiagram`,
    :class:`~sktopo.PHDimension`, :class:`~sktopo.DiagramFeatures` and :func:`sktopo.tidy` read
    it unchanged (``tidy`` gives ``stage`` and ``layer`` columns).

    Why a wrapper and not a parameter of ``LayerEmbedder``: the embedder stays the one place
    its options are set and documented, a sweep is exactly the embedder's output at each
    checkpoint (``embedder.set_params(model=...)`` by hand gives the same clouds), and
    ``clone``/``get_params`` reach the embedder's parameters as ``embedder__layers``.

    Parameters
    ----------
    embedder : LayerEmbedder
        The embedding, with a model of the checkpoints' architecture (its own weights are not
        used for file and state-dict checkpoints, and are never changed).

    checkpoints : path, glob pattern, list, dict or callable
        The weights of each stage:

        - a glob pattern (``"runs/epoch_*.pt"``; ``**`` crosses folders), a folder (its
          ``.pt``, ``.pth``, ``.bin`` and ``.ckpt`` files) or one file: files in natural order
          (``epoch_2`` before ``epoch_10``), stages named by their stem;
        - a list of paths (and patterns), in the order given, stages named by their stem;
        - a dict ``{stage: checkpoint}`` (a path, a state dict or a model);
        - a list, or a callable returning an iterable (a generator function), of state dicts,
          models or ``(stage, checkpoint)`` pairs; stages without a name are numbered
          0, 1, .... A callable is called at each ``transform``, so a generator that builds
          or loads one model at a time keeps memory bounded; a one-shot iterator works for one
          ``transform`` only.

        Files are read with ``torch.load(weights_only=True)`` (plain state dicts; a dict with a
        ``"state_dict"`` or ``"model_state_dict"`` entry is unwrapped). Models are embedded as
        they are. A checkpoint that does not fit the model (missing or unexpected keys, other
        shapes), a file ``torch.load`` cannot read or a pattern that matches nothing is a
        ValueError or FileNotFoundError naming it; paths, lists and dicts are checked whole
        before the first stage runs, a callable's checkpoints as they come.

    memory : str, path, joblib.Memory or None, default=None
        Where each stage's clouds are cached. The key of a stage is the checkpoint's content
        (the file's bytes, or its tensors; not its name or date), the embedder's parameters,
        the model's architecture and the content of ``X``: a sweep that was killed resumes with
        the stages not yet done; a file rewritten under the same name is recomputed. Entries
        live under ``joblib/sktopo/nn/checkpoints/_cached_stage/`` of the location (one folder
        per stage; ``cache_keys_`` gives each stage's key, stored in its ``metadata.json``).

    n_jobs : int, default=None
        Stages embedded in parallel through joblib (so ``joblib.parallel_config(backend=
        "dask")`` spreads them over a cluster); each worker holds one model. When the embedder
        leaves ``n_threads=None``, each of ``w`` workers runs torch with ``cores // w``
        threads, so the workers do not oversubscribe the cores.

    verbose : int, default=0
        If positive, a progress bar over the stages.

    Attributes
    ----------
    stages_ : list
        The stage names of the last ``transform``, in output order.

    computed_stages_ : list
        The stages the last ``transform`` computed (the others came from ``memory``).

    cache_keys_ : dict or None
        ``{stage: key}`` of the last ``transform`` with ``memory``, else None.

    See Also
    --------
    embed_checkpoints : the same, as one function call.

    Examples
    --------
    >>> import torch
    >>> from sktopo import LayerEmbedder
    >>> from sktopo import CheckpointEmbedder
    >>> from sktopo.nn.models import DigitsMLP
    >>> model = DigitsMLP(random_state=0)
    >>> states = {f"epoch{e}": DigitsMLP(random_state=e).state_dict() for e in (1, 2)}
    >>> sweep = CheckpointEmbedder(LayerEmbedder(model, torch.nn.ReLU, device="cpu"), states)
    >>> clouds = sweep.fit_transform(torch.rand(50, 64))
    >>> clouds.index.names
    FrozenList(['stage', 'layer'])
    >>> clouds.loc["epoch2", "relu1"].shape
    (50, 128)
    """

    _parameter_constraints = {
        "embedder": [LayerEmbedder],
        "checkpoints": "no_validation",
        "memory": "no_validation",  # checked by sklearn's check_memory in fit
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }

    def __init__(self, embedder, checkpoints, *, memory=None, n_jobs=None, verbose=0):
        self.embedder = embedder
        self.checkpoints = checkpoints
        self.memory = memory
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the parameters; file checkpoints are resolved (a pattern that matches nothing
        is an error here). Nothing is embedded.

        Parameters
        ----------
        X, y : ignored

        Returns
        -------
        self : CheckpointEmbedder
        """
        _check_memory(self.memory)
        if _is_path(self.checkpoints) or isinstance(self.checkpoints, (list, tuple, Mapping)):
            names = [name for name, _ in _iter_stages(self.checkpoints)]
            if not names:
                raise ValueError("CheckpointEmbedder: checkpoints is empty.")
        self.fitted_ = True
        return self

    def fit_transform(self, X, y=None):
        """Fit, then :meth:`transform` ``X``.

        Parameters
        ----------
        X : inputs as for :meth:`LayerEmbedder.transform`
        y : ignored

        Returns
        -------
        clouds : pandas.Series or pandas.DataFrame
            As :meth:`transform`.
        """
        return self.fit(X).transform(X)

    def transform(self, X):
        """Embed ``X`` at every checkpoint.

        Parameters
        ----------
        X : array-like, torch.Tensor, dict of arrays, list of str, Dataset or DataLoader
            The inputs, as for :meth:`LayerEmbedder.transform`; the same inputs at every stage.

        Returns
        -------
        clouds : pandas.Series or pandas.DataFrame
            ``unit="dataset"``: a Series indexed by ``(stage, layer)`` (``(stage, layer,
            reduce)`` with several reductions); ``unit="sample"``: a DataFrame with one row per
            (stage, input), indexed by ``(stage, <the inputs' index>)``, one column per layer.
            Each stage's part equals ``embedder`` run on that checkpoint's weights.
            ``attrs["inputs"]`` holds the positions of the extracted inputs.
        """
        check_is_fitted(self, "fitted_")
        memory = _check_memory(self.memory)
        embedder = self.embedder
        cached = memory.cache(_cached_stage, ignore=["job"]) if memory is not None else None
        stage_list = _iter_stages(self.checkpoints)
        total = None
        if _is_path(self.checkpoints) or isinstance(self.checkpoints, (list, tuple, Mapping)):
            stage_list = list(stage_list)
            total = len(stage_list)
        workers = effective_jobs(self.n_jobs)
        if total is not None:
            workers = max(1, min(workers, total))
        n_threads = None
        if workers > 1:
            import joblib

            n_threads = max(1, joblib.cpu_count() // workers)
        names, computed, keys = [], [], {}
        fixed_key = None
        if memory is not None:
            fixed_key = [_embedder_key(embedder), _content_key(X)]

        def calls():
            for stage, source in stage_list:
                if stage in names:
                    raise ValueError(f"CheckpointEmbedder: two checkpoints have the stage name "
                                     f"{stage!r}; name the stages (a dict {{stage: checkpoint}}).")
                names.append(stage)
                job = (embedder, stage, source, X, n_threads)
                if memory is not None:
                    key = keys[stage] = _content_key([fixed_key, _source_key(source)])
                    if cached.check_call_in_cache(key):
                        yield cached, (key,)
                        continue
                if _is_path(source):  # a checkpoint that does not fit: an error before work
                    _load_into(copy.deepcopy(embedder.model), _read_state(source),
                               repr(source))
                elif not isinstance(source, torch.nn.Module):
                    _load_into(copy.deepcopy(embedder.model),
                               _unwrap(source, f"stage {stage!r}"), f"of stage {stage!r}")
                computed.append(stage)
                yield (_embed_stage, job) if memory is None else (cached, (key, job))

        tasks = calls()
        if total is not None:
            # known checkpoints (paths, or objects already in memory): every one is checked
            # against the model and looked up in the cache before the first stage runs; a
            # callable's are checked as they come, so that one model at a time is held
            tasks = list(tasks)
        if workers <= 1:
            results = (function(*args) for function, args in tasks)
        else:
            from joblib import delayed

            results = lazy_parallel(workers)(delayed(function)(*args) for function, args in tasks)
        parts = list(progress(results, verbose=self.verbose, total=total,
                              desc="CheckpointEmbedder", unit="stage"))
        if not parts:
            raise ValueError("CheckpointEmbedder: checkpoints yielded no checkpoint (an "
                             "iterator already consumed? pass a callable that returns a new "
                             "one, e.g. a generator function).")
        self.stages_ = names
        self.computed_stages_ = computed
        self.cache_keys_ = keys if memory is not None else None
        return _concat(parts, names)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        return tags


def _concat(parts, names):
    """One collection with an outer ``stage`` level."""
    inputs = parts[0].attrs.get("inputs")
    for part in parts:
        part.attrs = {}
    result = pd.concat(parts, keys=names, names=["stage"])
    if isinstance(result, pd.DataFrame):
        result.columns.name = parts[0].columns.name
    result.attrs["inputs"] = inputs
    return result


def embed_checkpoints(embedder, checkpoints, X, *, memory=None, n_jobs=None, verbose=0):
    """Embed ``X`` at every checkpoint: ``CheckpointEmbedder(...).fit_transform(X)``.

    Parameters
    ----------
    embedder : LayerEmbedder
        The embedding; its model gives the architecture.
    checkpoints : path, glob pattern, list, dict or callable
        As for :class:`CheckpointEmbedder`.
    X : inputs as for :meth:`LayerEmbedder.transform`
    memory : str, path, joblib.Memory or None, default=None
        Disk cache of each stage's clouds, keyed by content (see :class:`CheckpointEmbedder`).
    n_jobs : int, default=None
        Stages embedded in parallel through joblib.
    verbose : int, default=0
        Progress bar over the stages.

    Returns
    -------
    clouds : pandas.Series or pandas.DataFrame
        Indexed by ``(stage, layer)`` (dataset unit) or ``(stage, input)`` (sample unit).
    """
    return CheckpointEmbedder(embedder, checkpoints, memory=memory, n_jobs=n_jobs,
                              verbose=verbose).fit_transform(X)
