"""Built-in data: synthetic manifolds of known topology and dimension, digits, texts.

Everything here is generated or ships inside installed packages: nothing is
downloaded. Random generators take ``random_state``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

__all__ = [
    "make_circle",
    "make_sphere",
    "make_torus",
    "make_closed_curve",
    "make_cube",
    "make_gaussian",
    "make_manifolds",
    "load_digits",
    "load_texts",
]


def _embed(points, ambient_dim, rng, rotate):
    """Place ``points`` in ``ambient_dim`` dimensions, optionally by a random rotation."""
    n, k = points.shape
    if ambient_dim is None or ambient_dim == k:
        return points
    if ambient_dim < k:
        raise ValueError(f"ambient_dim={ambient_dim} is smaller than the manifold's own {k} coordinates")
    out = np.zeros((n, ambient_dim))
    out[:, :k] = points
    if rotate:
        q, _ = np.linalg.qr(rng.normal(size=(ambient_dim, ambient_dim)))
        out = out @ q
    return out


def _noise(points, noise, rng):
    if noise:
        points = points + rng.normal(scale=noise, size=points.shape)
    return points


def make_sphere(n_samples=1000, dim=2, *, radius=1.0, ambient_dim=None, noise=0.0,
                rotate=True, random_state=None):
    """Uniform sample of the ``dim``-sphere of ``radius`` in R^(dim+1) (or ``ambient_dim``).

    Parameters
    ----------
    n_samples : int
    dim : int
        Intrinsic dimension: 1 is a circle, 2 the usual sphere.
    radius : float
    ambient_dim : int, optional
        Embed isometrically in this many dimensions (a random rotation when
        ``rotate``); defaults to ``dim + 1``.
    noise : float
        Standard deviation of Gaussian noise added to every coordinate.
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, ambient_dim)
    """
    rng = check_random_state(random_state)
    x = rng.normal(size=(n_samples, dim + 1))
    x *= radius / np.linalg.norm(x, axis=1, keepdims=True)
    return _noise(_embed(x, ambient_dim, rng, rotate), noise, rng)


def make_circle(n_samples=100, *, radius=1.0, noise=0.0, ambient_dim=None, random_state=None):
    """Uniform sample of a circle (one H1 class of death about radius * sqrt(3))."""
    return make_sphere(n_samples, 1, radius=radius, ambient_dim=ambient_dim, noise=noise,
                       random_state=random_state)


def make_torus(n_samples=1000, *, major_radius=2.0, minor_radius=1.0, noise=0.0,
               random_state=None):
    """Uniform (area-weighted) sample of a torus of revolution in R^3.

    Angles are drawn by rejection so the density is uniform on the surface,
    not in the angle coordinates: a non-uniform sample biases dimension estimates.
    """
    rng = check_random_state(random_state)
    R, r = float(major_radius), float(minor_radius)
    theta = np.empty(0)
    while theta.size < n_samples:
        cand = rng.uniform(0, 2 * np.pi, size=2 * n_samples)
        keep = rng.uniform(0, 1, size=cand.size) < (R + r * np.cos(cand)) / (R + r)
        theta = np.concatenate([theta, cand[keep]])
    theta = theta[:n_samples]
    phi = rng.uniform(0, 2 * np.pi, size=n_samples)
    X = np.column_stack([
        (R + r * np.cos(theta)) * np.cos(phi),
        (R + r * np.cos(theta)) * np.sin(phi),
        r * np.sin(theta),
    ])
    return _noise(X, noise, rng)


def make_closed_curve(n_samples=1000, *, ambient_dim=30, n_harmonics=3, noise=0.0,
                      random_state=None):
    """A smooth closed curve (a random trigonometric loop) in ``ambient_dim`` dimensions.

    Points are spaced uniformly in arc length, so the sample is uniform on the
    curve. Intrinsic dimension 1, one H1 class.
    """
    rng = check_random_state(random_state)
    coef = rng.normal(size=(2 * n_harmonics, ambient_dim)) / np.repeat(np.arange(1, n_harmonics + 1), 2)[:, None]
    coef[:2] *= 3.0  # a dominant first harmonic keeps the loop from crossing itself

    def curve(t):
        k = np.arange(1, n_harmonics + 1)
        basis = np.empty((t.size, 2 * n_harmonics))
        basis[:, 0::2] = np.cos(np.outer(t, k))
        basis[:, 1::2] = np.sin(np.outer(t, k))
        return basis @ coef

    fine = np.linspace(0, 2 * np.pi, 20 * n_samples + 1)
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(curve(fine), axis=0), axis=1))])
    s = rng.uniform(0, arc[-1], size=n_samples)
    return _noise(curve(np.interp(s, arc, fine)), noise, rng)


def make_cube(n_samples=1000, dim=5, *, ambient_dim=None, rotate=True, random_state=None):
    """Uniform sample of the unit cube [0, 1]^dim, optionally embedded in ``ambient_dim``."""
    rng = check_random_state(random_state)
    return _embed(rng.uniform(size=(n_samples, dim)), ambient_dim, rng, rotate)


def make_gaussian(n_samples=1000, dim=10, *, random_state=None):
    """Standard Gaussian sample in R^dim."""
    return check_random_state(random_state).normal(size=(n_samples, dim))


def make_manifolds(n_samples=400, *, random_state=0):
    """A Series of clouds of known topology, indexed by name: the README's demo data.

    Returns
    -------
    clouds : pandas.Series
        ``circle`` (b1 = 1), ``two_circles`` (b0 = 2, b1 = 2), ``sphere``
        (b2 = 1), ``torus`` (b1 = 2, b2 = 1), ``blob`` (contractible).
    """
    rng = check_random_state(random_state)
    seeds = rng.randint(0, 2**31 - 1, size=5)
    two = np.vstack([
        make_circle(n_samples // 2, random_state=seeds[1]),
        make_circle(n_samples - n_samples // 2, random_state=seeds[1] + 1) + [3.0, 0.0],
    ])
    clouds = {
        "circle": make_circle(n_samples, noise=0.01, random_state=seeds[0]),
        "two_circles": two,
        "sphere": make_sphere(n_samples, 2, random_state=seeds[2]),
        "torus": make_torus(n_samples, random_state=seeds[3]),
        "blob": make_gaussian(n_samples, 3, random_state=seeds[4]) * 0.5,
    }
    return pd.Series(clouds, name="cloud").rename_axis("manifold")


def load_digits(*, images=False, return_frame=False):
    """scikit-learn's 1797 8x8 handwritten digits, scaled to [0, 1] as float32.

    Parameters
    ----------
    images : bool, default=False
        Return ``(1797, 1, 8, 8)`` images for convolutional networks instead
        of ``(1797, 64)`` vectors.
    return_frame : bool, default=False
        Return the vectors as a DataFrame (one column per pixel).

    Returns
    -------
    X : ndarray (or DataFrame)
    y : ndarray of int64, the digit labels
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    if images:
        return X.reshape(-1, 1, 8, 8), y
    if return_frame:
        return pd.DataFrame(X, columns=[f"pixel_{i}" for i in range(64)]), y
    return X, y


_TEXTS = {
    "science": [
        "The telescope captured faint light from a galaxy billions of years away.",
        "Researchers sequenced the genome of a bacterium that survives extreme heat.",
        "A new battery chemistry stores more energy per kilogram than lithium ion cells.",
        "The experiment measured how quickly the enzyme breaks down the sugar molecule.",
        "Physicists observed a rare particle decay predicted decades ago.",
        "Climate models suggest the glacier will lose half its mass by the end of the century.",
        "The vaccine trial reported strong immune responses in older volunteers.",
        "Geologists dated the volcanic rock layers using radioactive isotopes.",
        "The rover drilled into the crater floor to look for ancient organic compounds.",
        "Neuroscientists recorded the activity of thousands of neurons at once.",
        "The chemists synthesised a catalyst that splits water using sunlight.",
        "Astronomers found a planet orbiting in the habitable zone of a red dwarf.",
    ],
    "sport": [
        "The striker scored twice in the second half to win the match.",
        "She broke the national record in the four hundred metres final.",
        "The team clinched the championship after a dramatic overtime victory.",
        "The goalkeeper saved a penalty in the last minute of the game.",
        "The cyclist attacked on the final climb and won the stage alone.",
        "The coach praised the defence after a clean sheet away from home.",
        "The tennis final went to five sets before the champion prevailed.",
        "The marathon runner kept a steady pace and finished in record time.",
        "The rookie pitcher struck out ten batters in his first start.",
        "Fans celebrated in the streets after the club won the cup.",
        "The swimmer touched the wall a fraction ahead of her rival.",
        "The basketball team came back from twenty points down to win.",
    ],
    "food": [
        "Simmer the tomatoes with garlic and basil until the sauce thickens.",
        "The bakery is famous for its sourdough with a dark crackling crust.",
        "Whisk the eggs with sugar until pale before folding in the flour.",
        "The restaurant serves fresh noodles in a rich pork broth.",
        "Roast the vegetables with olive oil, salt and rosemary for forty minutes.",
        "The chef paired the grilled fish with a sharp lemon butter.",
        "Let the dough rest overnight in the fridge for a deeper flavour.",
        "The market sells ripe mangoes, fragrant herbs and smoked cheese.",
        "Toast the spices in a dry pan before grinding them.",
        "The soup is thickened with lentils and finished with yoghurt.",
        "Caramelise the onions slowly so they turn sweet and golden.",
        "The dessert combines dark chocolate with salted caramel.",
    ],
}


def load_texts(*, return_frame=False):
    """A small labelled text corpus (science, sport, food) for token-cloud pipelines.

    Returns
    -------
    texts : list of str
    labels : ndarray of int64 (0 = science, 1 = sport, 2 = food)

    With ``return_frame=True``, a DataFrame with columns ``text`` and ``topic``.
    """
    texts, labels, topics = [], [], []
    for label, (topic, items) in enumerate(_TEXTS.items()):
        texts.extend(items)
        labels.extend([label] * len(items))
        topics.extend([topic] * len(items))
    if return_frame:
        return pd.DataFrame({"text": texts, "topic": topics})
    return texts, np.asarray(labels, dtype=np.int64)
