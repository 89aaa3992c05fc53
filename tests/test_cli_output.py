"""The output folder of ``sktopo profile``: a failed, interrupted or killed run never leaves an
incomplete result set, and --overwrite replaces only the files the run writes (issue 22)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from sktopo import cli
from sktopo.cli import main

MODELS = """\
import torch
def factory():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 8), torch.nn.ReLU())
def raises():
    raise RuntimeError('no weights here')
def reused():
    torch.manual_seed(0)
    relu = torch.nn.ReLU()
    return torch.nn.Sequential(torch.nn.Linear(5, 8), relu, torch.nn.Linear(8, 8), relu)
def smooth():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                               torch.nn.ReLU())
"""
USER = ["profile", "--model", "usermodels:factory", "--data", "X.npy", "--quiet",
        "--n-landmarks", "0", "--max-inputs", "40"]
EARLIER = ["--seed", "1"]  # the previous set: other numbers, so old and new files differ

# Runs the command in a child process that stops at one moment (SKTOPO_PAUSE) until killed:
# it writes the file "paused" and sleeps there.
DRIVER = textwrap.dedent("""\
    import os, sys, time
    from pathlib import Path
    from sktopo import cli

    def pausing(function, at_call):
        calls = []
        def wrapper(*args, **kwargs):
            calls.append(None)
            if len(calls) == at_call:
                Path("paused").write_text(str(os.getpid()))
                time.sleep(120)
            return function(*args, **kwargs)
        return wrapper

    name, at_call = os.environ["SKTOPO_PAUSE"].split(":")
    setattr(cli, name, pausing(getattr(cli, name), int(at_call)))
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "usermodels", raising=False)  # another test's copy
    (tmp_path / "usermodels.py").write_text(MODELS)
    (tmp_path / "driver.py").write_text(DRIVER)
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32))
    return tmp_path


def _files(folder):
    """{name: bytes} of everything in ``folder``, hidden files and folders included."""
    return {p.name: (p.read_bytes() if p.is_file() else "folder") for p in folder.iterdir()}


def _previous_set(user_files, *extra):
    """A complete earlier result set in ``out``, and its files."""
    assert main(USER + EARLIER + ["--out", "out", *extra]) == 0
    return _files(user_files / "out")


def _error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sktopo: error: "), err
    return lines[0]


# ------------------------------------------------------ 1: validate before changing --out


@pytest.mark.parametrize("extra, code, match", [
    (["--layers", "nosuch"], 2, "--layers: Unknown layer 'nosuch'"),
    (["--layers", "1#5"], 2, "--layers '1#5': module '1' runs 1 time(s) per forward pass, so "
                             "it has no call 5; select '1'."),
    (["--model", "usermodels:reused", "--layers", "1#3"], 2, "module '1' runs 2 time(s) per "
     "forward pass, so it has no call 3; select a call from 1 to 2 ('1#2' is its second), or "
     "'1' for every call."),
    (["--model", "usermodels:raises"], 1, "raised RuntimeError: no weights here"),
    (["--checkpoint", "other.pt"], 1, "does not fit the model"),
    (["--data", "missing.npy"], 2, "no such file"),
])
def test_failed_overwrite_keeps_the_previous_results(user_files, capsys, extra, code, match):
    torch.save(torch.nn.Linear(5, 3).state_dict(), user_files / "other.pt")
    before = _previous_set(user_files)
    assert {"profile.csv", "ranks.csv", "profile.png"} <= set(before)
    capsys.readouterr()
    assert main(USER + ["--out", "out", "--overwrite", *extra]) == code
    assert match in _error(capsys)
    assert _files(user_files / "out") == before  # nothing removed, nothing left behind


def test_bad_call_of_a_builtin_layer_is_a_usage_error_before_training(tmp_path, capsys,
                                                                      monkeypatch):
    from sktopo.nn import models

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --layers")

    monkeypatch.setattr(models, "fit_digits", no_training)
    out = tmp_path / "prev"
    out.mkdir()
    before = {name: f"earlier {name}".encode() for name in ("profile.csv", "ranks.csv",
                                                            "profile.png")}
    for name, content in before.items():
        (out / name).write_bytes(content)
    argv = ["profile", "--out", str(out), "--overwrite", "--layers", "relu1#5", "--quiet"]
    assert main(argv) == 2
    line = _error(capsys)
    assert "--layers 'relu1#5': module 'relu1' runs 1 time(s) per forward pass" in line
    assert "so it has no call 5; select 'relu1'." in line
    assert _files(out) == before


def test_a_call_the_module_makes_is_profiled(user_files):
    import pandas as pd

    assert main(USER + ["--out", "out", "--no-plots", "--model", "usermodels:reused",
                        "--layers", "1#2"]) == 0
    assert set(pd.read_csv(user_files / "out" / "profile.csv")["layer"]) == {"1#2"}


def test_layer_that_never_runs_is_a_usage_error(user_files, capsys):
    (user_files / "usermodels.py").write_text(MODELS + textwrap.dedent("""\
        class Spare(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = factory()
                self.unused = torch.nn.ReLU()
            def forward(self, x):
                return self.body(x)
        def spare():
            return Spare()
    """))
    assert main(USER + ["--out", "out", "--model", "usermodels:spare"]) == 2
    assert "--layers: 'unused' never ran in a forward pass of Spare" in _error(capsys)
    assert not (user_files / "out").exists()  # the folder this run would have made


# ------------------------------------------------------ 2: replace only what this run writes


def test_overwrite_removes_only_what_this_run_writes(user_files):
    out = user_files / "out"
    out.mkdir()
    mine = {"profile.png": b"my own plot", "profile.parquet": b"my own table",
            "notes.txt": b"mine"}
    for name, content in mine.items():
        (out / name).write_bytes(content)
    (out / "profile.csv").write_text("an earlier table")
    assert main(USER + ["--out", "out", "--overwrite", "--no-plots"]) == 0
    files = _files(out)
    assert {name: files[name] for name in mine} == mine
    assert sorted(files) == ["notes.txt", "profile.csv", "profile.parquet", "profile.png",
                             "ranks.csv"]
    assert files["profile.csv"].startswith(b"stage,layer")


def test_overwrite_removes_the_rank_table_of_an_earlier_model(user_files):
    # this run's model has no rank profile: an old ranks.csv would describe another model
    out = user_files / "out"
    out.mkdir()
    (out / "ranks.csv").write_text("an earlier model's ranks")
    assert main(USER + ["--out", "out", "--overwrite", "--no-plots", "--model",
                        "usermodels:smooth"]) == 0
    assert sorted(_files(out)) == ["profile.csv"]


# ------------------------------------------------------ 3: complete or not at all


def _run_until_paused(user_files, pause, argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SKTOPO_PAUSE": pause}
    child = subprocess.Popen([sys.executable, "driver.py", *argv], cwd=user_files, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (user_files / "paused").exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"the run did not reach {pause}: {child.communicate()}")
        time.sleep(0.05)
    (user_files / "paused").unlink()
    return child


def _new_set(user_files, *extra):
    """The files an uninterrupted run writes (the runs are deterministic)."""
    assert main(USER + ["--out", "reference", *extra]) == 0
    return _files(user_files / "reference")


@pytest.mark.slow
@pytest.mark.parametrize("pause, committed, extra", [
    ("_build_model:1", False, ["--no-plots"]),  # before the model, data and layers are checked
    ("_write_table:2", False, ["--no-plots"]),  # profile.csv staged, ranks.csv not yet
    ("_plot_profile:1", False, []),  # both tables staged, the plot not yet
    ("_finish_commit:1", True, ["--no-plots"]),  # the journal written, nothing moved yet
    ("_move:2", True, ["--no-plots"]),  # amid the moves: ranks.csv moved, profile.csv not yet
])
def test_killed_run_leaves_the_previous_or_the_new_set(user_files, pause, committed, extra):
    before = _previous_set(user_files, *extra)
    child = _run_until_paused(user_files, pause, USER + ["--out", "out", "--overwrite", *extra])
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    out = user_files / "out"
    visible = {name: data for name, data in _files(out).items() if not name.startswith(".")}
    if not committed:  # the previous set is untouched
        assert visible == before
    else:  # the dead run's journal says that its set is not all in place yet
        assert list(out.glob(".sktopo-staging-*/COMMIT"))
    # the next run on the folder (even one that fails) first finishes or discards the dead
    # one's work: the new complete set once the journal exists, else the previous set; and
    # no hidden file is left
    assert main(USER + ["--out", "out", "--overwrite", "--layers", "nosuch", *extra]) == 2
    assert _files(out) == (_new_set(user_files, *extra) if committed else before)


def test_ctrl_c_while_computing_keeps_the_previous_set(user_files):
    before = _previous_set(user_files, "--no-plots")
    child = _run_until_paused(user_files, "_write_table:2", USER + ["--out", "out",
                                                                     "--overwrite", "--no-plots"])
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert err.strip() == "sktopo: interrupted; nothing in 'out' was changed."
    assert _files(user_files / "out") == before


def test_ctrl_c_while_committing_completes_the_commit(user_files, monkeypatch, capsys):
    _previous_set(user_files)
    move = cli._move

    def interrupted_move(source, target):
        move(source, target)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first move

    monkeypatch.setattr(cli, "_move", interrupted_move)
    capsys.readouterr()
    assert main(USER + ["--out", "out", "--overwrite"]) == 130
    assert "sktopo: interrupted; the results in 'out' are complete." in capsys.readouterr().err
    monkeypatch.setattr(cli, "_move", move)
    assert _files(user_files / "out") == _new_set(user_files)


def test_files_of_dead_runs_do_not_block_the_next_run(user_files):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    out = user_files / "out"
    out.mkdir()
    (out / f".profile.partial-{dead}.csv").write_text("half")  # an older sktopo's leftovers
    (out / f".sktopo-write-test-{dead}").write_text("")
    staging = out / f".sktopo-staging-{dead}-x1"  # a run killed while computing
    staging.mkdir()
    (staging / "lock").write_text("")
    (staging / "profile.csv").write_text("half")
    assert main(USER + ["--out", "out"]) == 0  # no --overwrite: the folder counts as empty
    assert sorted(_files(out)) == ["profile.csv", "profile.png", "ranks.csv"]


@pytest.mark.skipif(sys.platform == "win32", reason="liveness through flock")
def test_a_live_run_in_the_same_folder_is_refused(user_files, capsys):
    import fcntl

    before = _previous_set(user_files)
    staging = user_files / "out" / ".sktopo-staging-4242-x1"
    staging.mkdir()
    (staging / "lock").write_text("")
    with open(staging / "lock", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a running sktopo holds it
        assert main(USER + ["--out", "out", "--overwrite"]) == 2
        assert "another sktopo run (process 4242) is writing into --out 'out'" in _error(capsys)
    assert _files(user_files / "out") == {**before, staging.name: "folder"}
