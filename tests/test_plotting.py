"""Plotting functions: each draws on the given Axes, returns it, and renders to PNG."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from sktopo.diagram import Diagram  # noqa: E402
from sktopo.plotting import (  # noqa: E402
    plot_barcode,
    plot_betti_curves,
    plot_diagram,
    plot_layer_profile,
    plot_rank_histogram,
)

INF = np.inf


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def diagram():
    return Diagram({0: [[0, 0.2], [0, 0.5], [0, INF]], 1: [[0.3, 0.9], [0.4, 0.45]], 2: []},
                   n_points=4)


def _save(ax, tmp_path, name):
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000
    return path


def _scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_plot_diagram_draws_one_scatter_per_dimension(diagram, tmp_path):
    fig, given = plt.subplots()
    ax = plot_diagram(diagram, ax=given)
    assert ax is given
    scatters = _scatters(ax)
    assert [len(s.get_offsets()) for s in scatters] == [3, 2, 0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["H0 (3)", "H1 (2)", "H2 (0)"]
    _save(ax, tmp_path, "diagram")


def test_plot_diagram_puts_infinite_bars_on_the_inf_line(diagram):
    ax = plot_diagram(diagram)
    h0 = _scatters(ax)[0].get_offsets()
    inf_y = h0[:, 1].max()
    assert np.isfinite(inf_y) and inf_y > 0.9  # above every finite death
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), inf_y)
    assert "∞" in [t.get_text() for t in ax.texts]
    low, high = ax.get_ylim()
    assert low < 0 and high > inf_y


def test_plot_diagram_marks_a_finite_threshold():
    d = Diagram({0: [[0, 0.4], [0, INF]], 1: [[0.5, 0.7]]}, threshold=1.0)
    ax = plot_diagram(d)
    inf_y = _scatters(ax)[0].get_offsets()[:, 1].max()
    assert inf_y > 1.0
    dotted = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and np.allclose(dotted[0].get_ydata(), 1.0)
    assert ax.get_ylim()[1] > inf_y


def test_plot_diagram_without_infinite_bars_has_no_inf_line():
    ax = plot_diagram(Diagram({1: [[0.1, 0.3]]}))
    assert not [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(ax.texts) == 0


def test_plot_diagram_selects_dimensions_and_names_missing_ones(diagram):
    ax = plot_diagram(diagram, homology_dimensions=1)
    assert len(_scatters(ax)) == 1
    with pytest.raises(ValueError, match=r"no dimension\(s\) \[3\].*\[0, 1, 2\]"):
        plot_diagram(diagram, homology_dimensions=[1, 3])


def test_plot_diagram_handles_empty_and_ripser_style_input(tmp_path):
    ax = plot_diagram(Diagram({0: [], 1: []}))
    assert [len(s.get_offsets()) for s in _scatters(ax)] == [0, 0]
    _save(ax, tmp_path, "empty")
    ax = plot_diagram([np.array([[0.0, 1.0], [0.0, INF]]), np.empty((0, 2))])
    assert len(_scatters(ax)) == 2


def test_plot_diagram_refuses_a_collection(diagram):
    with pytest.raises(TypeError, match="one diagram"):
        plot_diagram(pd.Series([diagram, diagram]))
    with pytest.raises(TypeError, match="one diagram"):
        plot_diagram([diagram])


def test_plot_functions_do_not_draw_on_the_current_axes(diagram):
    fig, current = plt.subplots()
    plt.sca(current)
    ax = plot_diagram(diagram)
    assert ax is not current and not current.collections and not current.lines


def test_plot_barcode_draws_every_bar(diagram, tmp_path):
    ax = plot_barcode(diagram)
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [len(b.get_segments()) for b in bars] == [3, 2, 0]
    segments = np.concatenate([b.get_segments() for b in bars if len(b.get_segments())])
    assert np.isfinite(segments).all()
    # the infinite H0 bar ends at the inf line, marked with an arrow head
    arrows = [ln for ln in ax.lines if ln.get_marker() == ">"]
    assert len(arrows) == 1
    inf_x = arrows[0].get_xdata()[0]
    assert inf_x > 0.9 and np.isclose(segments[:, :, 0].max(), inf_x)
    _save(ax, tmp_path, "barcode")


def test_plot_barcode_sorts_and_keeps_dimensions_apart(diagram):
    ax = plot_barcode(diagram, homology_dimensions=[0, 1])
    h0, h1 = [c for c in ax.collections if isinstance(c, LineCollection)]
    rows0 = [s[0, 1] for s in h0.get_segments()]
    rows1 = [s[0, 1] for s in h1.get_segments()]
    assert max(rows0) < min(rows1)
    # earliest births at the top, the longest first among equal births
    lengths0 = [s[1, 0] - s[0, 0] for s in h0.get_segments()]
    assert lengths0 == sorted(lengths0, reverse=True)
    assert ax.yaxis_inverted()


def test_plot_betti_curves_counts_infinite_bars(diagram, tmp_path):
    ax = plot_betti_curves(diagram, scales=[0.0, 0.1, 0.35, 0.6, 2.0])
    assert len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [3, 3, 2, 1, 1])
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [0, 0, 1, 1, 0])
    _save(ax, tmp_path, "betti")
    with pytest.raises(ValueError, match="scales"):
        plot_betti_curves(diagram, scales=[])


@pytest.fixture
def profile():
    return pd.DataFrame(
        {"phdim": [8.0, 12.0, 5.0, 2.5], "phdim_std": [0.3, 0.5, 0.2, 0.1], "r2": 0.99},
        index=pd.Index(["conv1", "conv2", "fc1", "fc2"], name="layer"),
    )


def test_plot_layer_profile_with_error_bars(profile, tmp_path):
    ax = plot_layer_profile(profile, title="PH dimension")
    assert len(ax.containers) == 1
    container = ax.containers[0]
    assert isinstance(container, ErrorbarContainer) and container.has_yerr
    line = container.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
    np.testing.assert_array_equal(line.get_ydata(), [8, 12, 5, 2.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(profile.index)
    assert ax.get_xlabel() == "layer" and ax.get_ylabel() == "PH dimension"  # in words
    # the legend says what the error bars are
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "PH dimension", "error bars: ± 1 s.d. (phdim_std)"]
    _save(ax, tmp_path, "profile")


def test_plot_layer_profile_yerr_options(profile):
    assert not plot_layer_profile(profile, y="r2").containers[0].has_yerr  # no r2_std
    assert not plot_layer_profile(profile, yerr=None).containers[0].has_yerr
    with pytest.raises(ValueError, match="'spread' is neither a column"):
        plot_layer_profile(profile, yerr="spread")
    with pytest.raises(ValueError, match="'nope' is neither a column"):
        plot_layer_profile(profile, y="nope")


def test_plot_layer_profile_one_line_per_model():
    index = pd.MultiIndex.from_product([["mlp", "cnn"], ["l1", "l2", "l3"]],
                                       names=["model", "layer"])
    table = pd.DataFrame({"phdim": np.arange(6.0), "phdim_std": 0.1}, index=index)
    ax = plot_layer_profile(table)
    assert len(ax.containers) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "mlp", "cnn", "error bars: ± 1 s.d. (phdim_std)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["l1", "l2", "l3"]


def test_plot_layer_profile_long_table_with_hue_and_numeric_x():
    long = pd.DataFrame({
        "depth": [0.75, 0.25, 0.5, 0.25, 0.5, 0.75],
        "state": ["trained"] * 3 + ["random"] * 3,
        "value": [3.0, 9.0, 6.0, 7.0, 7.5, 8.0],
    })
    ax = plot_layer_profile(long, y="value", x="depth", hue="state")
    trained = ax.containers[0].lines[0]
    np.testing.assert_array_equal(trained.get_xdata(), [0.25, 0.5, 0.75])  # sorted by x
    np.testing.assert_array_equal(trained.get_ydata(), [9.0, 6.0, 3.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["trained", "random"]


def test_plot_layer_profile_series_and_bad_input():
    ax = plot_layer_profile(pd.Series([1.0, 2.0], index=["a", "b"], name="twonn"))
    assert ax.get_ylabel() == "TwoNN dimension"
    assert plot_layer_profile(pd.Series([1.0, 2.0], index=["a", "b"], name="H0__total_persistence_p1"),
                              ).get_ylabel() == "H0 total persistence"
    with pytest.raises(TypeError, match="DataFrame or Series"):
        plot_layer_profile(np.ones((3, 2)))
    with pytest.raises(ValueError, match="no rows"):
        plot_layer_profile(pd.DataFrame({"phdim": []}))


@pytest.fixture
def ranks():
    rng = np.random.default_rng(0)
    n = 50
    return pd.DataFrame({
        "0__rank": rng.integers(1, 3, n), "0__active": rng.integers(1, 5, n),
        "2__rank": rng.integers(0, 2, n), "2__region": rng.integers(0, 10**6, n),
    }, index=pd.RangeIndex(n, name="input"))


def test_plot_rank_histogram_one_histogram_per_layer(ranks, tmp_path):
    ax = plot_rank_histogram(ranks, full_rank=2)
    assert len(ax.patches) == 2  # step histograms: one outline per layer
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "2"]
    assert [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    np.testing.assert_array_equal(ax.get_xticks(), [0, 1, 2])
    _save(ax, tmp_path, "ranks")


def test_plot_rank_histogram_counts(ranks):
    ax = plot_rank_histogram(ranks, layers="2", histtype="bar")
    heights = [p.get_height() for p in ax.patches]
    assert heights == [float((ranks["2__rank"] == r).sum()) for r in (0, 1)]


def test_plot_rank_histogram_weights_and_errors(ranks):
    regions = pd.DataFrame({"n_inputs": [5, 1], "a__rank": [3, 1]})
    ax = plot_rank_histogram(regions, weights="n_inputs", histtype="bar")
    assert sorted(p.get_height() for p in ax.patches if p.get_height()) == [1.0, 5.0]
    assert ax.get_ylabel() == "number of inputs"
    with pytest.raises(ValueError, match="no '\\{layer\\}__rank' columns"):
        plot_rank_histogram(ranks[["0__active"]])
    with pytest.raises(ValueError, match=r"layer\(s\) \['9'\]"):
        plot_rank_histogram(ranks, layers=["9"])
    with pytest.raises(ValueError, match="not a column"):
        plot_rank_histogram(ranks, weights="n_inputs")
    ax = plot_rank_histogram({"fc1": [3, 3, 2]})
    assert len(ax.patches) == 1


@pytest.mark.parametrize("figsize", [None, (4, 3), (7, 7)])
def test_plot_cycle_image_strip_leaves_the_axis_label_visible(figsize):
    """The strip of images sits under the x-axis label, inside the figure (issue 23, item 5:
    at the default size it covered the label)."""
    import sktopo
    from sktopo.datasets import make_circle
    from sktopo.plotting import plot_cycle

    X = make_circle(60, random_state=0)
    diagram = sktopo.persistence(X, representatives=True)
    images = np.random.default_rng(0).random((60, 8, 8))
    ax = None if figsize is None else plt.subplots(figsize=figsize)[1]
    ax = plot_cycle(X, diagram, images=images, ax=ax)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    label = ax.xaxis.label.get_window_extent(renderer)
    assert ax.get_xlabel() and label.height > 0
    page = fig.bbox
    assert page.x0 <= label.x0 and label.x1 <= page.x1
    assert page.y0 <= label.y0 and label.y1 <= page.y1
    strip = [a for a in fig.axes if a is not ax]
    assert len(strip) == 11
    for inset in strip:
        for box in (inset.get_window_extent(renderer), inset.title.get_window_extent(renderer)):
            assert box.y1 < label.y0, "an image of the strip covers the x-axis label"
            assert box.y0 >= page.y0 and box.x1 <= page.x1, "the strip leaves the figure"


def test_total_persistence_is_named_total_persistence():
    """``total_persistence_p1`` is the full sum of bar lengths: its words are 'total
    persistence', not study A's 'lifespans sum' (half of it per class; issue 23, item 2)."""
    from sktopo.plotting import _column_words

    assert _column_words("H0__total_persistence_p1") == "H0 total persistence"
    ax = plot_layer_profile(pd.DataFrame({"H1__total_persistence_p1": [1.0, 2.0]},
                                         index=pd.Index(["a", "b"], name="layer")),
                            y="H1__total_persistence_p1")
    assert ax.get_ylabel() == "H1 total persistence"
