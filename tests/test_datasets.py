import numpy as np

from sktopo import datasets


def test_shapes_and_seeds():
    a = datasets.make_sphere(100, 2, random_state=0)
    assert a.shape == (100, 3)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)
    np.testing.assert_array_equal(a, datasets.make_sphere(100, 2, random_state=0))
    assert datasets.make_sphere(50, 3, ambient_dim=20, random_state=1).shape == (50, 20)
    assert datasets.make_torus(200, random_state=0).shape == (200, 3)
    assert datasets.make_closed_curve(100, ambient_dim=30, random_state=0).shape == (100, 30)
    clouds = datasets.make_manifolds(100)
    assert list(clouds.index) == ["circle", "two_circles", "sphere", "torus", "blob"]


def test_digits_and_texts():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and X.max() <= 1
    assert datasets.load_digits(images=True)[0].shape == (1797, 1, 8, 8)
    texts, labels = datasets.load_texts()
    assert len(texts) == len(labels) == 36
