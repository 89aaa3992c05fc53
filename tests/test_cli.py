import subprocess
import sys
import warnings

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


def test_profile_bad_model_path(tmp_path, capsys):
    assert main(["profile", "--model", "nonsense", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "import path" in capsys.readouterr().err



# ----------------------------------------------------------------------------- hardening
def _error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sktopo: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "usermodels", raising=False)  # another test's copy
    (tmp_path / "usermodels.py").write_text(
        "import torch\n"
        "def factory():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),\n"
        "                               torch.nn.Linear(16, 8), torch.nn.ReLU())\n"
        "def needs_args(width):\n"
        "    return torch.nn.Linear(5, width)\n"
        "def raises():\n"
        "    raise RuntimeError('no weights here')\n"
        "def not_a_model():\n"
        "    return 3\n"
    )
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32))
    return tmp_path


USER = ["profile", "--model", "usermodels:factory", "--data", "X.npy", "--no-plots", "--quiet",
        "--n-landmarks", "0"]


@pytest.mark.parametrize("extra, code, match", [
    (["--data", "missing.npy"], 2, "--data 'missing.npy': no such file"),
    (["--data", "."], 2, "is a folder"),
    (["--data", "obj.npy"], 2, "holds Python objects"),
    (["--data", "flat.npy"], 2, r"has shape \(60,\): it needs one row per input"),
    (["--data", "wide.npy"], 1, "takes 5 features where it got 7"),
    (["--checkpoint", "missing.pt"], 2, "no such file"),
    (["--checkpoint", "other.pt"], 1, "does not fit the model.*size mismatch"),
    (["--checkpoint", "whole.pt"], 1, r"not a plain state_dict.*model.state_dict\(\)"),
    (["--layers", "nope"], 2, "--layers: Unknown layer 'nope'"),
    (["--layers", "[z-a]"], 2, "not a valid glob pattern"),
    (["--device", "cuda:7"], 2, "--device 'cuda:7'"),
    (["--device", "meta"], 2, "not supported"),
    (["--model", "usermodels:needs_args"], 1, "needs_args\\(\\) raised TypeError.*no arguments"),
    (["--model", "usermodels:raises"], 1, "raised RuntimeError: no weights here"),
    (["--model", "usermodels:not_a_model"], 1, "returned int, not a torch.nn.Module"),
    (["--model", "usermodels:nothing"], 2, "has no attribute 'nothing'"),
    (["--model", "nomodule:factory"], 2, "cannot import 'nomodule'"),
    (["--labels", "X.npy"], 2, "--labels and --stage apply to the built-in models"),
    (["--stage", "trained"], 2, "--labels and --stage apply to the built-in models"),
    (["--epochs", "3"], 2, "--epochs applies to the built-in models"),
    (["--n-jobs", "0"], 2, "0 is not a number of jobs"),
    (["--max-inputs", "-5"], 2, "must be at least 0"),
    (["--seed", "-1"], 2, "must be at least 0"),
    (["--n-landmarks", "x"], 2, "expected an integer"),
    (["--homology-dimensions", "1", "1"], 2, "lists a dimension twice"),
    (["--homology-dimensions", "-1"], 2, "must be at least 0"),
    (["--n-threads", "0"], 2, "must be at least 1"),
])
def test_every_mistake_is_one_line_with_the_right_status(user_files, capsys, extra, code,
                                                         match):
    import re

    np.save(user_files / "obj.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    np.save(user_files / "flat.npy", np.zeros(60))
    np.save(user_files / "wide.npy", np.zeros((60, 7), dtype=np.float32))
    torch.save(torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(), torch.nn.Linear(
        32, 8)).state_dict(), user_files / "other.pt")
    torch.save(make_user_model(), user_files / "whole.pt")
    if extra[:2] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("a machine with 8 GPUs")
    argv = USER + ["--out", str(user_files / "runs" / "out")] + extra
    assert main(argv) == code
    line = _error(capsys)
    assert re.search(match, line), line
    # a failed run leaves no folder behind, neither --out nor the parents it made (issue 23,
    # item 7); usage mistakes are found before anything is computed or written
    assert not (user_files / "runs").exists()


def test_debug_shows_the_traceback(user_files):
    with pytest.raises(Exception, match="no such file"):
        main(USER + ["--out", "out", "--data", "missing.npy", "--debug"])


def test_builtin_mistakes(tmp_path, capsys):
    assert main(["profile", "--epochs", "-1", "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "--epochs: must be at least 1" in _error(capsys)
    np.save(tmp_path / "X.npy", np.zeros((10, 64), dtype=np.float32))
    assert main(["profile", "--data", str(tmp_path / "X.npy"), "--out", str(tmp_path / "b"),
                 "--quiet"]) == 2
    assert "needs labels: pass --labels" in _error(capsys)
    np.save(tmp_path / "X5.npy", np.zeros((10, 5), dtype=np.float32))
    assert main(["profile", "--data", str(tmp_path / "X5.npy"), "--out", str(tmp_path / "c"),
                 "--quiet"]) == 2
    assert "takes 8x8 digits" in _error(capsys)
    assert main(["profile", "--nonsense"]) == 2
    assert "unrecognized arguments: --nonsense" in _error(capsys)


def test_nan_rows_reported_at_their_position_in_the_file(user_files, capsys):
    X = np.load(user_files / "X.npy")
    X[30, 2] = np.nan
    np.save(user_files / "X.npy", X)
    assert main(USER + ["--out", "out", "--max-inputs", "20"]) == 2
    assert "NaN or infinite values in 1 row(s): 30 (positions in the file" in _error(capsys)


def test_out_is_checked_before_computing(user_files, capsys):
    (user_files / "afile").write_text("x")
    assert main(USER + ["--out", "afile"]) == 2
    assert "--out 'afile' is a file" in _error(capsys)
    out = user_files / "out"
    out.mkdir()
    (out / "profile.png").write_text("stale")
    (out / "notes.txt").write_text("mine")
    assert main(USER + ["--out", "out"]) == 2
    assert "is not empty (notes.txt, profile.png); pass --overwrite" in _error(capsys)
    # --overwrite replaces the files the run writes (a stale plot), keeps the user's own
    with_plots = [a for a in USER if a != "--no-plots"]
    assert main(with_plots + ["--out", "out", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "profile.csv", "profile.png",
                                                     "ranks.csv"]
    assert (out / "profile.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(sys.platform == "win32" or (hasattr(__import__("os"), "geteuid")
                                                and __import__("os").geteuid() == 0),
                    reason="root can write into read-only folders")
def test_read_only_out_folder(user_files, capsys):
    out = user_files / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(USER + ["--out", "ro/sub"]) == 2
        assert "cannot write to --out" in _error(capsys)
    finally:
        out.chmod(0o700)


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from sktopo import cli

    def interrupted(self, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli._write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv", "csv", False)
    assert list(tmp_path.iterdir()) == []


def test_model_import_does_not_shadow_installed_packages(user_files):
    import os
    import subprocess

    # the case: a matplotlib.py in the working folder, imported by the user's module
    (user_files / "matplotlib.py").write_text("raise SystemExit('the local matplotlib.py ran')\n")
    (user_files / "usermodels.py").write_text(
        "import matplotlib\n" + (user_files / "usermodels.py").read_text())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # as the installed `sktopo` script starts: the current folder is not on sys.path
    code = ("import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
            "from sktopo.cli import main; code = main(sys.argv[1:]); "
            "import os; assert os.getcwd() not in sys.path; sys.exit(code)")
    argv = [a for a in USER if a != "--no-plots"]
    run = subprocess.run([sys.executable, "-c", code, *argv, "--out", "out"],
                         capture_output=True, text=True, cwd=user_files, env=env)
    assert run.returncode == 0, run.stderr
    assert (user_files / "out" / "profile.png").exists()


def test_read_only_out_is_an_error_before_computing(user_files, capsys, monkeypatch):
    from pathlib import Path

    def refuse(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    assert main(USER + ["--out", "ro"]) == 2
    assert "cannot write to --out 'ro': Permission denied" in _error(capsys)


def test_model_from_a_file_path(user_files):
    argv = ["profile", "--model", "usermodels.py:factory", "--data", "X.npy", "--no-plots",
            "--quiet", "--n-landmarks", "0", "--out", "out"]
    assert main(argv) == 0
    assert (user_files / "out" / "profile.csv").exists()


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    text = capsys.readouterr().out
    assert "stage, layer, source, homology_dimension, feature, value" in text
    assert "examples:" in text and "--homology-dimensions Q" in text
    assert "homology dimensions of the persistence features" in text
    assert "only use code you trust" in text
    with pytest.raises(SystemExit):
        main(["manifolds", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_counts_print_as_integers(tmp_path, capsys):
    assert main(["manifolds", "--n-samples", "60", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "H0__n_bars" in out and ".000" not in out.split("H0__n_bars")[1].split("\n")[1]


def test_manifolds_minimum_size_gives_a_ph_dimension(tmp_path, capsys):
    # the old minimum (20 points) left PHDimension fewer than 3 subsample sizes: NaN for all
    # five manifolds, with a raw warning source line
    assert main(["manifolds", "--n-samples", "29", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--n-samples: must be at least 30" in err and "PH dimension" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the one warning left at the minimum is PHDimension's flag on a fit it cannot trust
        # (30 points of a 3-D blob); the row says so in phdim_reliable
        warnings.filterwarnings("ignore", message=".*phdim_reliable is 0")
        assert main(["manifolds", "--n-samples", "30", "--out", str(tmp_path), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "manifolds.csv", index_col=0)
    assert table["phdim"].notna().all()
    assert set(table["phdim_reliable"]) <= {0.0, 1.0} and table["phdim_reliable"].sum() >= 3


def test_library_warnings_print_as_one_line_without_our_source(tmp_path, capsys):
    assert main(["manifolds", "--n-samples", "30", "--out", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "sktopo: warning: PHDimension:" in err and "phdim_reliable is 0" in err
    assert ".py:" not in err and "UserWarning" not in err


def test_progress_bars_end_full(user_files, capsys):
    """Every bar the command shows reaches its total (PersistenceDiagram stopped at 2/3,
    issue 23, item 5): the last chunk was never counted, as the bar was never asked again."""
    import re

    argv = [a for a in USER if a != "--quiet"] + ["--out", "out", "--n-jobs", "2"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    bars = {}
    for line in re.split(r"[\r\n]", err):
        found = re.match(r"\s*([\w ]+):\s+\d+%\|.*?\|\s*(\d+)/(\d+)", line)
        if found:
            bars.setdefault(found.group(1), []).append((int(found.group(2)),
                                                        int(found.group(3))))
    assert "PersistenceDiagram" in bars, err
    for name, states in bars.items():
        done, total = states[-1]
        assert done == total, f"{name} ended at {done}/{total}"


def test_rank_table_says_what_it_counts_and_what_dead_inputs_do(user_files, capsys):
    """The rank table has a deficit informative for narrowing networks, and the output says
    what frac_inputs_low_rank counts and what coordinates constant over the data do (issue 23,
    item 1)."""
    X = np.load(user_files / "X.npy")
    X[:, 2] = 0.0  # a dead input
    np.save(user_files / "X.npy", X)
    assert main(USER + ["--out", "out"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "rank of the data = 4" in out
    assert "frac_inputs_low_rank counts ranks below the input dimension (5)" in out
    assert "dead inputs: 1 of the 5 input coordinates are constant over all 60 inputs" in out
    assert "they cost no rank deficit" in out
    ranks = pd.read_csv(user_files / "out" / "ranks.csv", index_col=[0, 1])
    assert {"mean_rank_deficit", "frac_inputs_rank_deficient"} <= set(ranks.columns)
    # the 8-unit layer after a 16-unit one: low rank (below 5) or not, the deficit is counted
    # against min(units, rank before, 4)
    assert (ranks["mean_rank_deficit"] >= 0).all()


def test_profile_plot_names_total_persistence_not_lifespans(tmp_path, monkeypatch):
    """The plot shows total_persistence_p1 (the full sum of bar lengths of the whole cloud) as
    'total persistence': 'lifespans sum' is study A's quantity, about ten times smaller (issue
    23, item 2)."""
    import matplotlib.pyplot as plt

    from sktopo import cli

    table = pd.DataFrame(
        {"phdim": [3.0, 2.0], "phdim_std": [0.1, 0.2], "twonn": [3.0, 2.5],
         "H0__total_persistence_p1": [100.0, 80.0], "H1__total_persistence_p1": [5.0, 4.0]},
        index=pd.MultiIndex.from_product([["given"], ["a", "b"]], names=["stage", "layer"]))
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    cli._plot_profile(table, {}, tmp_path / "profile.png")
    titles = [ax.get_title() for ax in figures[0].axes]
    labels = [ax.get_ylabel() for ax in figures[0].axes]
    assert titles == ["PH dimension", "TwoNN dimension", "H0 total persistence",
                      "H1 total persistence"]
    assert not any("lifespan" in text for text in titles + labels)
    plt.close("all")
