"""CheckpointEmbedder: layer clouds over training checkpoints (issue 24, item 3)."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from sktopo import DiagramFeatures, LayerEmbedder, PersistenceDiagram, tidy
from sktopo._device import torch_threads
from sktopo.nn import checkpoints as ckpt
from sktopo.nn.checkpoints import CheckpointEmbedder, embed_checkpoints

EPOCHS = (1, 2, 10)  # saved as epoch_1, epoch_2, epoch_10: natural order, not "1, 10, 2"


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                               torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _data():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(30, 5, 4, generator=generator)  # 30 inputs of 5 tokens


@pytest.fixture
def run(tmp_path):
    """(model, X, [checkpoint paths in epoch order]): a few SGD steps between saves."""
    model, X = _model(), _data()
    target = torch.randn(30, 5, 3, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    paths = []
    with torch_threads(1):
        _train(model, X, target, optimizer, paths, tmp_path)
    return _model(), X, paths


def _train(model, X, target, optimizer, paths, tmp_path):
    for epoch in range(1, max(EPOCHS) + 1):
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(X), target).backward()
            optimizer.step()
        if epoch in EPOCHS:
            path = tmp_path / "run" / f"epoch_{epoch}.pt"
            path.parent.mkdir(exist_ok=True)
            torch.save(model.state_dict(), path)
            paths.append(path)


def _embedder(model, unit="dataset"):
    return LayerEmbedder(model, torch.nn.ReLU, unit=unit, device="cpu", n_threads=1)


def _reference(model, path, X, unit):
    """LayerEmbedder on a model loaded by hand."""
    loaded = copy.deepcopy(model)
    loaded.load_state_dict(torch.load(path, weights_only=True))
    return _embedder(loaded, unit).fit_transform(X)


def _counting(monkeypatch):
    """Record the stages actually embedded (cache hits do not reach _embed_stage)."""
    calls = []
    original = ckpt._embed_stage

    def spy(embedder, stage, *args):
        calls.append(stage)
        return original(embedder, stage, *args)

    monkeypatch.setattr(ckpt, "_embed_stage", spy)
    return calls


def _entry(location, key):
    """The cache folder of one stage's key."""
    for metadata in Path(location).rglob("metadata.json"):
        if key in json.loads(metadata.read_text())["input_args"]["key"]:
            return metadata.parent
    raise AssertionError(f"no cache entry for {key}")


@pytest.mark.parametrize("unit", ["dataset", "sample"])
def test_equals_layer_embedder_per_checkpoint(run, unit):
    model, X, paths = run
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clouds = embed_checkpoints(_embedder(model, unit), str(paths[0].parent / "epoch_*.pt"), X)
    stages = [f"epoch_{e}" for e in EPOCHS]
    assert clouds.index.names[0] == "stage"
    assert list(clouds.index.unique("stage")) == stages
    for stage, path in zip(stages, paths):
        expected = _reference(model, path, X, unit)
        got = clouds.loc[stage]
        if unit == "dataset":
            assert list(got.index) == list(expected.index) == ["1", "3"]
            for layer in expected.index:
                assert np.array_equal(got[layer], expected[layer])
        else:
            assert list(got.columns) == list(expected.columns)
            for layer in expected.columns:
                for a, b in zip(got[layer], expected[layer]):
                    assert np.array_equal(a, b)
    # the user's model is untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_index_shapes(run):
    model, X, paths = run
    dataset = embed_checkpoints(_embedder(model), paths, X)
    assert isinstance(dataset, pd.Series)
    assert dataset.index.names == ["stage", "layer"]
    assert len(dataset) == 3 * 2 and dataset.iloc[0].shape == (30, 8)
    assert dataset.attrs["inputs"] == range(30)
    sample = embed_checkpoints(_embedder(model, "sample"), paths, X)
    assert isinstance(sample, pd.DataFrame)
    assert sample.index.names == ["stage", "sample"]
    assert sample.shape == (3 * 30, 2) and sample.columns.name == "layer"
    assert sample.iloc[0, 0].shape == (5, 8)


def test_sources_dict_callable_and_models(run):
    model, X, paths = run
    states = [torch.load(p, weights_only=True) for p in paths]
    expected = embed_checkpoints(_embedder(model), paths, X)

    named = embed_checkpoints(_embedder(model), dict(zip("abc", states)), X)
    assert list(named.index.unique("stage")) == ["a", "b", "c"]

    def models():  # one model at a time
        for state in states:
            m = _model()
            m.load_state_dict(state)
            yield m

    generated = embed_checkpoints(_embedder(model), models, X)
    assert list(generated.index.unique("stage")) == [0, 1, 2]
    for a, b in zip(generated, expected):
        assert np.array_equal(a, b)
    pairs = embed_checkpoints(_embedder(model), lambda: zip(["x", "y"], states[:2]), X)
    assert list(pairs.index.unique("stage")) == ["x", "y"]
    # a folder: its .pt files in natural order
    folder = embed_checkpoints(_embedder(model), paths[0].parent, X)
    assert list(folder.index.unique("stage")) == [f"epoch_{e}" for e in EPOCHS]


def test_memory_resumes_only_unfinished_stages(run, tmp_path, monkeypatch):
    model, X, paths = run
    calls = _counting(monkeypatch)
    location = tmp_path / "cache"
    sweep = CheckpointEmbedder(_embedder(model), paths, memory=str(location))
    first = sweep.fit_transform(X)
    assert calls == ["epoch_1", "epoch_2", "epoch_10"]
    assert sweep.computed_stages_ == calls

    calls.clear()
    again = clone(sweep).fit_transform(X)
    assert calls == []  # every stage from the cache
    for a, b in zip(first, again):
        assert np.array_equal(a, b)

    # a sweep killed before epoch_2 was stored: only epoch_2 is recomputed
    import shutil

    shutil.rmtree(_entry(location, sweep.cache_keys_["epoch_2"]))
    resumed = sweep.fit_transform(X)
    assert calls == ["epoch_2"] and sweep.computed_stages_ == ["epoch_2"]
    for a, b in zip(first, resumed):
        assert np.array_equal(a, b)


def test_memory_keys_by_content(run, tmp_path, monkeypatch):
    model, X, paths = run
    calls = _counting(monkeypatch)
    memory = tmp_path / "cache"
    embed_checkpoints(_embedder(model), paths, X, memory=memory)
    calls.clear()
    # same name, other weights: recomputed, and the result follows the new file
    torch.save(torch.load(paths[0], weights_only=True), paths[2])
    changed = embed_checkpoints(_embedder(model), paths, X, memory=memory)
    assert calls == ["epoch_10"]
    assert np.array_equal(changed.loc[("epoch_10", "1")], changed.loc[("epoch_1", "1")])
    # other data, or other layers: everything again
    calls.clear()
    embed_checkpoints(_embedder(model), paths, X[:20], memory=memory)
    assert calls == ["epoch_1", "epoch_2", "epoch_10"]
    calls.clear()
    other = LayerEmbedder(model, "1", device="cpu", n_threads=1)
    embed_checkpoints(other, paths, X, memory=memory)
    assert calls == ["epoch_1", "epoch_2", "epoch_10"]
    # a renamed copy of a file is the same content: a cache hit
    calls.clear()
    renamed = paths[0].with_name("copy.pt")
    renamed.write_bytes(paths[0].read_bytes())
    embed_checkpoints(_embedder(model), [renamed], X, memory=memory)
    assert calls == []
    # in-memory state dicts are keyed by their tensors
    states = {"s": torch.load(paths[1], weights_only=True)}
    embed_checkpoints(_embedder(model), states, X, memory=memory)
    embed_checkpoints(_embedder(model), states, X, memory=memory)
    assert calls == ["s"]


def test_parallel_equals_sequential(run, tmp_path):
    model, X, paths = run
    sequential = embed_checkpoints(_embedder(model), paths, X)
    parallel = embed_checkpoints(_embedder(model), paths, X, n_jobs=2, memory=tmp_path / "c")
    assert parallel.index.equals(sequential.index)
    for a, b in zip(parallel, sequential):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("unit", ["dataset", "sample"])
def test_estimators_and_tidy_read_the_stage_axis(run, unit):
    model, X, paths = run
    clouds = embed_checkpoints(_embedder(model, unit), paths, X)
    diagrams = PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(clouds)
    assert diagrams.index.equals(clouds.index)
    features = DiagramFeatures().set_output(transform="pandas").fit_transform(diagrams)
    assert features.index.equals(clouds.index)
    long = tidy(features)
    assert "stage" in long.columns
    assert list(long["stage"].unique()) == ["epoch_1", "epoch_2", "epoch_10"]
    if unit == "dataset":
        assert "layer" in long.columns and set(long["layer"]) == {"1", "3"}
    else:
        assert "sample" in long.columns and set(long["source"]) == {"1", "3"}


def test_clone_and_params(run):
    model, _, paths = run
    sweep = CheckpointEmbedder(_embedder(model), paths, n_jobs=1)
    assert sweep.get_params()["embedder__layers"] is torch.nn.ReLU
    copied = clone(sweep)
    assert copied.embedder is not sweep.embedder and copied.checkpoints == paths


def test_errors(run, tmp_path, monkeypatch):
    model, X, paths = run
    calls = _counting(monkeypatch)
    embedder = _embedder(model)
    with pytest.raises(FileNotFoundError, match="matches no file"):
        embed_checkpoints(embedder, str(tmp_path / "nothing_*.pt"), X)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        embed_checkpoints(embedder, [tmp_path / "missing.pt"], X)

    other = tmp_path / "other.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                   torch.nn.Linear(8, 2)).state_dict(), other)
    # missing keys (4.*) and a shape mismatch: the file and the keys are named
    with pytest.raises(ValueError, match=r"other\.pt.*missing keys '4\.weight', '4\.bias'"):
        embed_checkpoints(embedder, [paths[0], other], X)
    with pytest.raises(ValueError, match=r"other\.pt.*missing keys"):
        embed_checkpoints(embedder, [paths[0], other], X, memory=tmp_path / "cache")
    assert calls == []  # found before the first stage was embedded
    bad_state = {"ok": torch.load(paths[0], weights_only=True),
                 "bad": torch.load(other, weights_only=True)}
    with pytest.raises(ValueError, match=r"of stage 'bad'.*missing keys"):
        embed_checkpoints(embedder, bad_state, X)
    assert calls == []
    extra = tmp_path / "extra.pt"
    torch.save({**torch.load(paths[0], weights_only=True), "head.weight": torch.zeros(1)}, extra)
    with pytest.raises(ValueError, match=r"extra\.pt.*unexpected keys 'head\.weight'"):
        embed_checkpoints(embedder, [extra], X)
    wrong_shape = tmp_path / "shape.pt"
    state = torch.load(paths[0], weights_only=True)
    state["0.weight"] = torch.zeros(8, 5)
    torch.save(state, wrong_shape)
    with pytest.raises(ValueError, match=r"shape\.pt.*size mismatch"):
        embed_checkpoints(embedder, [wrong_shape], X)

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(paths[0].read_bytes()[:200])
    with pytest.raises(ValueError, match=r"corrupt\.pt.*corrupt or truncated"):
        embed_checkpoints(embedder, [corrupt], X)
    pickled = tmp_path / "whole_model.pt"
    torch.save(_model(), pickled)
    with pytest.raises(ValueError, match=r"whole_model\.pt.*not a plain state dict"):
        embed_checkpoints(embedder, [pickled], X)

    state = torch.load(paths[0], weights_only=True)
    with pytest.raises(ValueError, match="stage name 'a'"):
        embed_checkpoints(embedder, lambda: [("a", state), ("a", state)], X)
    once = iter([torch.load(paths[0], weights_only=True)])
    sweep = CheckpointEmbedder(embedder, once)
    sweep.fit_transform(X)
    with pytest.raises(ValueError, match="already consumed"):
        sweep.transform(X)
    with pytest.raises(TypeError, match="checkpoints must be"):
        embed_checkpoints(embedder, 3, X)


# ------------------------------------------------------------------ the CLI


def _cli_run(tmp_path, monkeypatch):
    """A user model factory, its data and three checkpoints, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweepmodels.py").write_text(
        "import torch\n"
        "def factory():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),\n"
        "                               torch.nn.Linear(16, 8), torch.nn.ReLU())\n")
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32))
    (tmp_path / "run").mkdir()
    for epoch in EPOCHS:
        torch.manual_seed(epoch)
        model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),
                                    torch.nn.Linear(16, 8), torch.nn.ReLU())
        torch.save(model.state_dict(), tmp_path / "run" / f"epoch_{epoch}.pt")
    return ["profile", "--model", "sweepmodels:factory", "--data", "X.npy", "--quiet",
            "--n-landmarks", "0", "--max-inputs", "40"]


def test_cli_profile_sweep(tmp_path, monkeypatch):
    from sktopo.cli import main

    argv = _cli_run(tmp_path, monkeypatch)
    assert main(argv + ["--checkpoint", "run/epoch_*.pt", "--out", "glob"]) == 0
    long = pd.read_csv(tmp_path / "glob" / "profile.csv")
    assert list(long["stage"].unique()) == ["epoch_1", "epoch_2", "epoch_10"]
    assert set(long["layer"].astype(str)) == {"1", "3"}
    assert (tmp_path / "glob" / "trajectory.png").exists()
    ranks = pd.read_csv(tmp_path / "glob" / "ranks.csv")
    assert list(ranks["stage"].unique()) == ["epoch_1", "epoch_2", "epoch_10"]

    # repeated --checkpoint: in the order given; each stage is that checkpoint's own profile
    assert main(argv + ["--checkpoint", "run/epoch_10.pt", "--checkpoint", "run/epoch_1.pt",
                        "--out", "two", "--no-plots"]) == 0
    two = pd.read_csv(tmp_path / "two" / "profile.csv")
    assert list(two["stage"].unique()) == ["epoch_10", "epoch_1"]
    assert main(argv + ["--checkpoint", "run/epoch_10.pt", "--out", "one", "--no-plots"]) == 0
    one = pd.read_csv(tmp_path / "one" / "profile.csv")
    assert set(one["stage"]) == {"given"}  # one checkpoint: as before
    pd.testing.assert_frame_equal(
        two[two["stage"] == "epoch_10"].drop(columns="stage").reset_index(drop=True),
        one.drop(columns="stage"))


def test_cli_profile_sweep_errors(tmp_path, monkeypatch, capsys):
    from sktopo.cli import main

    argv = _cli_run(tmp_path, monkeypatch)
    assert main(argv + ["--checkpoint", "run/nothing_*.pt", "--out", "a"]) == 2
    assert "--checkpoint 'run/nothing_*.pt' matches no file" in capsys.readouterr().err
    torch.save(torch.nn.Linear(5, 3).state_dict(), tmp_path / "run" / "epoch_99.pt")
    # a checkpoint that does not fit stops the sweep before any stage is profiled
    assert main(argv + ["--checkpoint", "run/epoch_*.pt", "--out", "b"]) == 1
    assert "epoch_99.pt' does not fit the model" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_cli_profile_sweep_resumes_from_cache(tmp_path, monkeypatch):
    import shutil

    from sktopo import cli

    argv = _cli_run(tmp_path, monkeypatch) + ["--checkpoint", "run/epoch_*.pt", "--no-plots",
                                              "--cache", "cache"]
    calls = []
    original = cli._profile_one

    def spy(stages, name, *args):
        calls.append(name)
        return original(stages, name, *args)

    monkeypatch.setattr(cli, "_profile_one", spy)
    assert cli.main(argv + ["--out", "first"]) == 0
    assert calls == ["epoch_1", "epoch_2", "epoch_10"]
    calls.clear()
    assert cli.main(argv + ["--out", "again"]) == 0
    assert calls == []
    first = pd.read_csv(tmp_path / "first" / "profile.csv")
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "again" / "profile.csv"))
    # a run stopped before epoch_2 was stored: only epoch_2 is profiled again
    entries = sorted((tmp_path / "cache").rglob("metadata.json"))
    assert len(entries) == 3
    shutil.rmtree(entries[0].parent)
    assert cli.main(argv + ["--out", "resumed"]) == 0
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "resumed" / "profile.csv"))
    # other options: everything again
    calls.clear()
    assert cli.main(argv + ["--out", "other", "--homology-dimensions", "0"]) == 0
    assert calls == ["epoch_1", "epoch_2", "epoch_10"]
    assert cli.main(["profile", "--cache", "cache", "--out", "no", "--quiet"]) == 2


def test_in_a_pipeline(run):
    from sklearn.pipeline import make_pipeline

    model, X, paths = run
    pipe = make_pipeline(CheckpointEmbedder(_embedder(model), paths),
                         PersistenceDiagram(homology_dimensions=(0,)), DiagramFeatures())
    table = pipe.set_output(transform="pandas").fit_transform(X)
    assert table.index.names == ["stage", "layer"] and len(table) == 6
    assert clone(pipe).get_params()["checkpointembedder__embedder__unit"] == "dataset"
