"""The study A depth-profile figure (issue 23, items 2 and 5): error bars on the PH dimension
from its spread over the reruns, and study A's quantity named 'lifespans sum'."""

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def depth_profile(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import study_a_depth_profile

    return study_a_depth_profile


def test_depth_profile_draws_the_phdim_spread_as_error_bars(depth_profile):
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    index = pd.MultiIndex.from_product([["ReLU"], ["untrained", "trained"], ["act1", "out"]],
                                       names=["activation", "stage", "layer"])
    table = pd.DataFrame({"depth": [0.5, 1.0] * 2, "phdim": [4.0, 5.0, 4.5, 3.0],
                          "phdim_std": [0.1, 0.2, 0.3, 0.4],
                          "H0_lifespans": [10.0, 8.0, 9.0, 7.0],
                          "H1_lifespans": [1.0, 0.8, 0.9, 0.7]}, index=index)
    fig = depth_profile.figure(table)
    phdim, h0, h1 = fig.axes
    bars = [c for c in phdim.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # one per (activation, stage)
    for container, std in zip(bars, [[0.1, 0.2], [0.3, 0.4]]):
        segments = container.lines[2][0].get_segments()
        np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments], 2 * np.array(std))
    assert "s.d." in phdim.get_title()
    assert not any(isinstance(c, ErrorbarContainer) for c in h0.containers)
    assert h0.get_title() == "H0 lifespans sum (study A, local)"
    plt.close(fig)
