"""Every example runs in its reduced ``--quick`` mode, so none of them rots.

Each test runs one script in a subprocess with ``--quick --out <tmp>``, checks that it exits
cleanly, prints its numbers and writes its figure. Helpers add one test function per example.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, tmp_path, *args, timeout=600):
    """Run ``examples/<name>`` with ``--quick --out tmp_path``; return its stdout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out", str(tmp_path), *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


# ---------------------------------------------------------------- study B (helper H6)
@pytest.mark.slow
def test_study_b_dale_quick(tmp_path):
    out = run_example("study_b_dale.py", tmp_path)
    assert "mean minimum rank" in out and "balanced" in out
    assert (tmp_path / "study_b_dale.png").stat().st_size > 0


@pytest.mark.slow
def test_study_b_knots_quick(tmp_path):
    out = run_example("study_b_knots.py", tmp_path)
    assert "H1 Wasserstein distance between X and X/A" in out and "paper" in out
    assert (tmp_path / "study_b_knots.png").stat().st_size > 0


@pytest.mark.slow
def test_study_b_regression_vs_classification_quick(tmp_path):
    out = run_example("study_b_regression_vs_classification.py", tmp_path)
    assert "continuous" in out and "2 levels" in out
    assert (tmp_path / "study_b_regression_vs_classification.png").stat().st_size > 0


@pytest.mark.slow
def test_study_b_rank_vs_width_quick(tmp_path):
    out = run_example("study_b_rank_vs_width.py", tmp_path)
    assert "mean minimum rank" in out and "k rows flipped" in out
    assert (tmp_path / "study_b_rank_vs_width.png").stat().st_size > 0


@pytest.mark.slow
def test_digits_mlp_ranks_quick(tmp_path):
    out = run_example("digits_mlp_ranks.py", tmp_path)
    assert "test accuracy" in out and "trained, noise" in out
    assert (tmp_path / "digits_mlp_ranks.png").stat().st_size > 0
