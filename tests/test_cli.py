import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from sktopo.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["profile", "--help"], ["manifolds", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: sktopo" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "sktopo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "profile" in out.stdout


def test_manifolds(tmp_path, capsys):
    assert main(["manifolds", "--n-samples", "80", "--out", str(tmp_path), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "manifolds.csv", index_col=0)
    assert list(table.index) == ["circle", "two_circles", "sphere", "torus", "blob"]
    assert table.loc["two_circles", "H0__n_infinite"] == 1
    assert "phdim" in capsys.readouterr().out


@pytest.mark.slow
def test_profile_builtin_mlp(tmp_path):
    argv = ["profile", "--out", str(tmp_path), "--max-inputs", "150", "--epochs", "3",
            "--n-landmarks", "80", "--quiet"]
    assert main(argv) == 0
    long = pd.read_csv(tmp_path / "profile.csv")
    assert list(long.columns) == ["stage", "layer", "source", "homology_dimension", "feature", "value"]
    assert set(long["stage"]) == {"untrained", "trained"}
    assert {"phdim", "phdim_r2", "twonn", "twonn_r2", "total_persistence_p1"} <= set(long["feature"])
    keys = ["stage", "layer", "source", "homology_dimension", "feature"]
    assert not long[keys].astype(str).duplicated().any(), "two estimators wrote the same feature"
    ranks = pd.read_csv(tmp_path / "ranks.csv")
    assert (ranks["min_rank"] <= 64).all()
    assert (tmp_path / "profile.png").stat().st_size > 10_000


def make_user_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8),
                               torch.nn.ReLU())


def test_profile_user_model_npy_and_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "usermodels.py").write_text(
        "import torch\n"
        "def factory():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),\n"
        "                               torch.nn.Linear(16, 8), torch.nn.ReLU())\n"
    )
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32))
    torch.save(make_user_model().state_dict(), tmp_path / "weights.pt")
    argv = ["profile", "--model", "usermodels:factory", "--data", "X.npy", "--checkpoint",
            "weights.pt", "--out", "out", "--format", "parquet", "--no-plots", "--quiet",
            "--n-landmarks", "0"]
    assert main(argv) == 0
    long = pd.read_parquet(tmp_path / "out" / "profile.parquet")
    assert set(long["stage"]) == {"given"}
    assert set(long["layer"]) == {"1", "3"}
    assert (tmp_path / "out" / "ranks.parquet").exists()


def test_profile_bad_model_path(tmp_path):
    with pytest.raises(SystemExit, match="import path"):
        main(["profile", "--model", "nonsense", "--out", str(tmp_path), "--quiet"])
