"""Input adapters: turn what a user passes as ``X`` into batches for a forward pass.

Accepted inputs (see ``LayerEmbedder``):

- numpy arrays, torch tensors, numeric pandas DataFrames, nested lists of numbers: batches are
  slices along the first axis, passed positionally (``model(x)``);
- a mapping of equal-length arrays or tensors (a tokenizer's ``BatchEncoding``, a dict of
  ``input_ids``/``attention_mask``): passed as keyword arguments (``model(**batch)``);
- a list, tuple, numpy array or pandas Series of strings, with a Hugging Face ``tokenizer``:
  tokenized batch by batch with padding, and the attention mask is passed to the model;
- a ``torch.utils.data.Dataset``: items are batched with the default collate function, the
  first element of a tuple/list item being the input;
- a ``torch.utils.data.DataLoader``: its batches as they come (first element of a tuple/list
  batch; a dict batch is passed as keyword arguments);
- a Dataset or DataLoader of texts (or of (text, label) pairs), with a ``tokenizer``.

Floating inputs are cast to the model's floating dtype (numpy arrays are float64 by default
while models are float32), integer inputs (token ids) are left alone.
"""

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, Subset
from torch.utils.data import default_collate


class Batch:
    """One batch: positional input or keyword inputs, the attention mask (CPU, bool) if any."""

    def __init__(self, args=None, kwargs=None):
        self.args = args
        self.kwargs = kwargs or {}
        mask = self.kwargs.get("attention_mask")
        self.mask = None if mask is None else mask.detach().to("cpu").bool()
        first = args if args is not None else next(
            (v for v in self.kwargs.values() if isinstance(v, torch.Tensor)), None)
        if first is None:
            raise TypeError("A batch must hold at least one tensor input.")
        self.size = first.shape[0]

    def head(self, k):
        """The batch of the first ``k`` inputs (a probe for the batch axis)."""
        def cut(t):
            return t[:k] if isinstance(t, torch.Tensor) and t.ndim > 0 and t.shape[0] == self.size \
                else t
        return Batch(args=None if self.args is None else cut(self.args),
                     kwargs={key: cut(v) for key, v in self.kwargs.items()})

    def to(self, device, float_dtype):
        def move(t):
            if not isinstance(t, torch.Tensor):
                return t
            if float_dtype is not None and t.is_floating_point():
                t = t.to(float_dtype)
            return t.to(device)

        args = None if self.args is None else move(self.args)
        kwargs = {k: move(v) for k, v in self.kwargs.items()}
        return args, kwargs


def _is_text_list(X):
    if isinstance(X, str):
        raise TypeError("X is a single string: pass a list of texts, e.g. [text].")
    if isinstance(X, pd.Series):
        return len(X) > 0 and isinstance(X.iloc[0], str)
    if isinstance(X, np.ndarray):
        return X.dtype.kind in "US" or (
            X.dtype == object and X.size > 0 and isinstance(X.flat[0], str))
    if isinstance(X, (list, tuple)):
        return len(X) > 0 and isinstance(X[0], str)
    return False


def _to_tensor(value, where):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, pd.DataFrame):
        value = value.to_numpy()
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise TypeError(
            f"{where} could not be read as a numeric array (dtype {array.dtype}). Pass numbers "
            "(array, tensor, DataFrame), texts with tokenizer=, a Dataset or a DataLoader.")
    return torch.from_numpy(np.ascontiguousarray(array))


def _is_strings(item):
    return isinstance(item, (tuple, list)) and len(item) > 0 and all(
        isinstance(text, str) for text in item)


def _first_element(item):
    if isinstance(item, (tuple, list)) and not _is_strings(item):
        return item[0]
    return item


def _collate_first(items):
    return default_collate([_first_element(item) for item in items])


def _batch_from_loader_item(batch, tokenize):
    batch = _first_element(batch)
    if isinstance(batch, str) or _is_strings(batch):
        if tokenize is None:
            raise ValueError("The Dataset or DataLoader gives texts: pass tokenizer= (a "
                             "Hugging Face tokenizer).")
        return Batch(kwargs=tokenize([batch] if isinstance(batch, str) else list(batch)))
    if isinstance(batch, Mapping):
        return Batch(kwargs=dict(batch))
    if isinstance(batch, torch.Tensor):
        return Batch(args=batch)
    if isinstance(batch, np.ndarray):
        return Batch(args=torch.from_numpy(batch))
    raise TypeError(
        f"A DataLoader batch gave {type(batch).__name__}; expected a tensor, a dict of tensors "
        "or a tuple/list whose first element is one of these.")


class Inputs:
    """Batches of ``X`` with the positions of the inputs kept (after ``max_inputs``).

    Attributes: ``positions`` (sorted int array, or None until a loader of unknown length has
    been read), ``index`` (pandas Index for the sample unit), ``n_batches`` (or None).
    """

    def __init__(self, X, *, batch_size, tokenizer=None, tokenizer_kwargs=None,
                 max_inputs=None, random_state=None):
        self.batch_size = batch_size
        self._pandas_index = X.index if isinstance(X, (pd.Series, pd.DataFrame)) else None
        is_text = _is_text_list(X)
        self._tokenize = None
        if tokenizer is not None:
            kwargs = {"padding": True, "truncation": True, "return_tensors": "pt",
                      **(tokenizer_kwargs or {})}
            self._tokenize = lambda texts: dict(tokenizer(texts, **kwargs))
        if tokenizer is not None and not is_text and not isinstance(X, (Dataset, DataLoader)):
            raise TypeError(
                f"tokenizer is set but X is a {type(X).__name__}, not texts (a list, a Series, "
                "or a Dataset/DataLoader of texts). Pass texts, or set tokenizer=None for "
                "tokenized inputs (e.g. a dict of tensors).")
        if is_text and tokenizer is None:
            raise ValueError(
                "X is a list of texts: pass tokenizer= (a Hugging Face tokenizer), e.g. from "
                "sktopo.nn.models.load_minilm().")

        if isinstance(X, DataLoader):
            self._init_loader(X, max_inputs, random_state)
            return
        if isinstance(X, IterableDataset):
            if max_inputs is not None:
                raise ValueError("max_inputs needs inputs of known length; an IterableDataset "
                                 "has none. Take a subset of it yourself.")
            self._loader = DataLoader(X, batch_size=batch_size, collate_fn=_collate_first)
            self.positions, self.n_batches = None, None
            self._kind = "loader"
            return

        if is_text:
            self._texts = list(X.tolist() if hasattr(X, "tolist") else X)
            n = len(self._texts)
            self._kind = "text"
        elif isinstance(X, Dataset):
            n = len(X)
            self._kind = "dataset"
            self._dataset = X
        elif isinstance(X, Mapping):
            self._tensors = {k: _to_tensor(v, f"X[{k!r}]") for k, v in X.items()}
            lengths = {k: t.shape[0] for k, t in self._tensors.items() if t.ndim > 0}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"The arrays in X must have the same first dimension; got "
                                 f"{lengths}.")
            n = next(iter(lengths.values()))
            self._kind = "mapping"
        else:
            self._tensor = _to_tensor(X, "X")
            if self._tensor.ndim == 0:
                raise ValueError("X is a scalar; pass an array of inputs (first axis = inputs).")
            n = self._tensor.shape[0]
            self._kind = "tensor"
        if n == 0:
            raise ValueError("X holds no inputs.")
        self.positions = _subsample(n, max_inputs, random_state)
        self.n_batches = math.ceil(len(self.positions) / batch_size)

    def _init_loader(self, loader, max_inputs, random_state):
        self._kind = "loader"
        self.positions, self.n_batches = None, None
        self._loader = loader
        if max_inputs is None:
            if isinstance(loader.sampler, RandomSampler):
                warnings.warn(
                    "The DataLoader shuffles (shuffle=True): inputs are extracted in its "
                    "random order, and the output rows and attrs['inputs'] count them in that "
                    "order, not by their positions in the dataset. Pass a DataLoader with "
                    "shuffle=False (or the Dataset itself) to keep them aligned.",
                    UserWarning, stacklevel=4)
            try:
                self.n_batches = len(loader)
            except TypeError:
                pass
            return
        dataset = loader.dataset
        if isinstance(dataset, IterableDataset) or loader.batch_size is None:
            raise ValueError("max_inputs with a DataLoader needs a map-style dataset and a "
                             "batch_size; subsample the dataset yourself instead.")
        self.positions = _subsample(len(dataset), max_inputs, random_state)
        self._loader = DataLoader(
            Subset(dataset, self.positions.tolist()), batch_size=loader.batch_size,
            collate_fn=loader.collate_fn, num_workers=loader.num_workers,
            pin_memory=loader.pin_memory)
        self.n_batches = len(self._loader)

    def __iter__(self):
        if self._kind == "loader":
            count = 0
            for item in self._loader:
                batch = _batch_from_loader_item(item, self._tokenize)
                count += batch.size
                yield batch
            if count == 0:
                raise ValueError("The DataLoader gave no inputs.")
            if self.positions is None:
                self.positions = np.arange(count)
            return
        if self._kind == "dataset":
            subset = self._dataset
            if len(self.positions) != len(self._dataset):
                subset = Subset(self._dataset, self.positions.tolist())
            for item in DataLoader(subset, batch_size=self.batch_size,
                                   collate_fn=_collate_first):
                yield _batch_from_loader_item(item, self._tokenize)
            return
        for start in range(0, len(self.positions), self.batch_size):
            chunk = self.positions[start:start + self.batch_size]
            if self._kind == "text":
                yield Batch(kwargs=self._tokenize([self._texts[i] for i in chunk]))
            elif self._kind == "mapping":
                rows = torch.from_numpy(chunk)
                yield Batch(kwargs={k: t[rows.to(t.device)] if t.ndim > 0 else t
                                    for k, t in self._tensors.items()})
            else:
                if len(chunk) == chunk[-1] - chunk[0] + 1:  # contiguous: a view, no copy
                    yield Batch(args=self._tensor[int(chunk[0]):int(chunk[-1]) + 1])
                else:
                    yield Batch(args=self._tensor[torch.from_numpy(chunk).to(
                        self._tensor.device)])

    @property
    def index(self):
        """Index of the extracted inputs: the input's own pandas index, else ``sample``."""
        if self._pandas_index is not None:
            return self._pandas_index[self.positions]
        if len(self.positions) and self.positions[-1] == len(self.positions) - 1:
            return pd.RangeIndex(len(self.positions), name="sample")
        return pd.Index(self.positions, name="sample")


def _subsample(n, max_inputs, random_state):
    if max_inputs is None or max_inputs >= n:
        return np.arange(n)
    rng = check_random_state(random_state)
    return np.sort(rng.choice(n, size=max_inputs, replace=False))
