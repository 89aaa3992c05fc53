"""PersistenceImage and PersistenceLandscape: against persim, hand cases, fitted grids."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from sktopo import Diagram, PersistenceImage, PersistenceLandscape

INF = np.inf


def _ripser_diagram(X, maxdim=1, thresh=INF):
    import ripser

    dgms = ripser.ripser(X, maxdim=maxdim, thresh=thresh)["dgms"]
    return Diagram(dgms, n_points=len(X), threshold=thresh)


@pytest.fixture
def noisy(rng):
    return _ripser_diagram(rng.normal(size=(60, 2)))


def test_image_matches_persim(noisy):
    from persim import PersistenceImager

    # persim's grid: pixel_size 0.25 over birth (0, 1.5) x persistence (0, 1) = 6 x 4 pixels;
    # its Gaussian is given by the variance sigma**2.
    imager = PersistenceImager(birth_range=(0, 1.5), pers_range=(0, 1.0), pixel_size=0.25,
                               weight="persistence", kernel_params={"sigma": [[0.01, 0], [0, 0.01]]})
    theirs = imager.transform(noisy[1], skew=True)
    est = PersistenceImage(homology_dimensions=1, resolution=(6, 4), weight="persistence",
                           sigma=0.1, birth_range=(0, 1.5), persistence_range=(0, 1.0)).fit([noisy])
    np.testing.assert_allclose(est.image(noisy, 1), theirs, atol=1e-12)
    np.testing.assert_allclose(est.transform([noisy])[0], theirs.ravel(), atol=1e-12)


def test_image_linear_weight_matches_persim_ramp(noisy):
    from persim import PersistenceImager

    est = PersistenceImage(homology_dimensions=1, resolution=(6, 4), sigma=0.2,
                           birth_range=(0, 1.5), persistence_range=(0, 1.0)).fit([noisy])
    imager = PersistenceImager(birth_range=(0, 1.5), pers_range=(0, 1.0), pixel_size=0.25,
                               weight="linear_ramp",
                               weight_params={"low": 0.0, "high": 1.0, "start": 0.0, "end": 1.0},
                               kernel_params={"sigma": [[0.04, 0], [0, 0.04]]})
    np.testing.assert_allclose(est.image(noisy, 1), imager.transform(noisy[1], skew=True), atol=1e-12)


def test_image_fitted_ranges_and_mass():
    d = Diagram({0: [[0, 1], [0, 2], [0, INF]], 1: [[1.0, 1.5], [2.0, 4.0]]})
    est = PersistenceImage(resolution=(10, 8), sigma=1e-3, weight=lambda b, p: np.ones_like(p)).fit([d])
    assert est.birth_ranges_[1] == (1.0, 2.0)
    assert est.persistence_ranges_[1] == (0.0, 2.0)
    # H0: all births 0 -> a range centred on 0 as wide as the persistence range
    assert est.birth_ranges_[0] == (-1.0, 1.0)
    assert est.persistence_ranges_[0] == (0.0, 2.0)  # the infinite bar is left out
    # a tiny sigma puts (almost) all the weight inside; points on the top edge keep half
    img = est.image(d, 1)
    assert img.sum() == pytest.approx(0.5 + 0.25, abs=1e-6)  # (2, 2) is a corner: a quarter
    assert est.transform([d]).shape == (1, 2 * 80)
    names = est.get_feature_names_out()
    assert names[0] == "H0__image_0_0" and names[-1] == "H1__image_9_7"


def test_image_default_sigma_and_threshold():
    d = Diagram({1: [[0.0, 1.0], [0.5, INF]]}, threshold=2.0)
    est = PersistenceImage(resolution=(4, 3)).fit([d])
    # the infinite bar is clipped at the threshold: persistence 1.5
    assert est.persistence_ranges_[1] == (0.0, 1.5)
    assert est.sigmas_[1] == pytest.approx(max(0.5 / 4, 1.5 / 3))
    assert np.isfinite(est.transform([d])).all()


def test_image_empty_dimension_is_zero():
    full = Diagram({1: [[0, 1]]})
    empty = Diagram({1: []})
    out = PersistenceImage(resolution=(3, 3)).fit([full, empty]).transform([empty])
    assert out.shape == (1, 9) and (out == 0).all()
    # a fit on diagrams without any bar still gives a valid, all-zero table
    out = PersistenceImage(resolution=(3, 3)).fit_transform([empty])
    assert (out == 0).all()


def test_landscape_hand_case():
    d = Diagram({1: [[0.0, 2.0], [1.0, 3.0]]})
    est = PersistenceLandscape(n_layers=3, n_bins=7).fit([d])
    np.testing.assert_allclose(est.grids_[1], np.arange(7) / 2)
    out = est.transform([d]).reshape(3, 7)
    np.testing.assert_allclose(out[0], [0, 0.5, 1, 0.5, 1, 0.5, 0])
    np.testing.assert_allclose(out[1], [0, 0, 0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(out[2], 0)  # fewer bars than layers: zeros
    assert est.get_feature_names_out()[7] == "H1__landscape_2_0"


def test_landscape_matches_persim_exact(noisy):
    from persim.landscapes import PersLandscapeExact

    est = PersistenceLandscape(n_layers=4, n_bins=64).fit([noisy])
    ours = est.landscape(noisy, 1)
    exact = PersLandscapeExact(dgms=[noisy.finite(0), noisy[1]], hom_deg=1)
    reference = np.zeros_like(ours)
    for k, pairs in enumerate(exact.critical_pairs[:4]):
        pairs = np.asarray(pairs, dtype=float)
        reference[k] = np.interp(est.grids_[1], pairs[:, 0], pairs[:, 1], left=0, right=0)
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_landscape_infinite_bars():
    no_threshold = Diagram({0: [[0, 2], [0, INF]]})
    est = PersistenceLandscape(n_layers=2, n_bins=3).fit([no_threshold])
    np.testing.assert_allclose(est.transform([no_threshold]), [[0, 1, 0, 0, 0, 0]])
    clipped = Diagram({0: [[0, 2], [0, INF]]}, threshold=4.0)
    est = PersistenceLandscape(n_layers=2, n_bins=5).fit([clipped])
    np.testing.assert_allclose(est.grids_[0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(est.transform([clipped]).reshape(2, 5),
                               [[0, 1, 2, 1, 0], [0, 1, 0, 0, 0]])


def test_fixed_width_and_frame_names(rng):
    fit_diagrams = [_ripser_diagram(rng.normal(size=(20, 2))) for _ in range(2)]
    bigger = _ripser_diagram(10 * rng.normal(size=(30, 2)))
    for est in (PersistenceImage(resolution=(5, 4)), PersistenceLandscape(n_layers=2, n_bins=10)):
        est = clone(est).fit(fit_diagrams)
        assert est.transform([bigger]).shape == est.transform(fit_diagrams[:1]).shape
        frame = pd.DataFrame({"l1": fit_diagrams, "l2": fit_diagrams[::-1]})
        est = clone(est).fit(frame)
        names = est.get_feature_names_out()
        assert names[0].startswith("l1__H0__") and names[-1].startswith("l2__H1__")
        assert est.transform(frame).shape == (2, len(names))


def test_bad_parameters_and_inputs(noisy):
    with pytest.raises(ValueError, match="resolution"):
        PersistenceImage(resolution=(0, 3)).fit([noisy])
    with pytest.raises(ValueError):
        PersistenceImage(sigma=-1.0).fit([noisy])
    with pytest.raises(ValueError):
        PersistenceImage(weight="log").fit([noisy])
    with pytest.raises(ValueError, match="one weight per bar"):
        PersistenceImage(weight=lambda b, p: 1.0).fit_transform([noisy])
    with pytest.raises(ValueError):
        PersistenceLandscape(n_layers=0).fit([noisy])
    with pytest.raises(TypeError, match="not a Diagram"):
        PersistenceLandscape().fit([noisy, np.zeros((3, 2))])


@pytest.mark.parametrize("resolution", [(2.5, 3), (3, 0), (3,), (3, 3, 3), (True, 3), ("3", 3)])
def test_resolution_must_be_two_positive_whole_numbers(resolution):
    d = Diagram({1: [[0.0, 1.0], [0.5, 2.0]]})
    with pytest.raises(ValueError, match="resolution must be two positive integers"):
        PersistenceImage(resolution=resolution).fit([d])  # (2.5, 3) was truncated to (2, 3)
    assert PersistenceImage(resolution=(2.0, 3)).fit([d]).transform([d]).shape == (1, 6)
