"""Scaling out: joblib backends (dask.distributed) and Pipeline caching."""

import numpy as np
import pandas as pd
import pytest
import torch
from joblib import parallel_config
from sklearn.pipeline import Pipeline

from sktopo import PersistenceDiagram, PHDimension
from sktopo.datasets import make_sphere


def _clouds(k=6, n=150):
    return pd.Series(
        [make_sphere(n, 1 + i % 2, noise=0.01, random_state=i) for i in range(k)],
        index=[f"cloud{i}" for i in range(k)],
    )


@pytest.mark.slow
def test_dask_backend_gives_serial_numbers():
    distributed = pytest.importorskip("dask.distributed")
    clouds = _clouds()
    serial_dgms = PersistenceDiagram(homology_dimensions=(0, 1), n_jobs=1).fit_transform(clouds)
    serial_dim = PHDimension(random_state=0, n_jobs=1).fit_transform(clouds)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with parallel_config(backend="dask"):
            dgms = PersistenceDiagram(homology_dimensions=(0, 1), n_jobs=-1).fit_transform(clouds)
            dim = PHDimension(random_state=0, n_jobs=-1).fit_transform(clouds)
    assert all(a.allclose(b) for a, b in zip(serial_dgms, dgms))
    np.testing.assert_array_equal(np.asarray(serial_dim), np.asarray(dim))



@pytest.mark.slow
def test_checkpoint_sweep_on_dask_gives_serial_clouds(tmp_path):
    """CheckpointEmbedder's stages go through joblib, so a Dask cluster runs them."""
    distributed = pytest.importorskip("dask.distributed")
    from sktopo import CheckpointEmbedder, LayerEmbedder
    from sktopo.nn.models import DigitsMLP

    paths = []
    for epoch in range(4):
        paths.append(tmp_path / f"epoch_{epoch}.pt")
        torch.save(DigitsMLP(hidden=(16, 8), random_state=epoch).state_dict(), paths[-1])
    X = np.random.default_rng(0).random((80, 64)).astype(np.float32)
    embedder = LayerEmbedder(DigitsMLP(hidden=(16, 8)), torch.nn.ReLU, device="cpu")
    serial = CheckpointEmbedder(embedder, str(tmp_path / "epoch_*.pt")).fit_transform(X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with parallel_config(backend="dask"), distributed.get_task_stream(client) as tasks:
            sweep = CheckpointEmbedder(embedder, str(tmp_path / "epoch_*.pt"), n_jobs=-1)
            clouds = sweep.fit_transform(X)
    assert len(tasks.data) >= 1  # the stages ran on the cluster
    assert clouds.index.equals(serial.index) and len(clouds) == 8
    assert sweep.computed_stages_ == [f"epoch_{e}" for e in range(4)]
    for a, b in zip(clouds, serial):
        np.testing.assert_array_equal(a, b)


CALLS = []


class Counting(torch.nn.Module):
    """Counts forward passes; module level so joblib's cache can pickle it."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 8)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        CALLS.append(len(x))
        return self.act(self.lin(x))


def test_pipeline_memory_caches_layer_embeddings(tmp_path):
    from sktopo import DiagramFeatures, LayerEmbedder

    calls = CALLS
    calls.clear()
    torch.manual_seed(0)
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    pipe = Pipeline(
        [("embed", LayerEmbedder(Counting(), layers=["lin", "act"])),
         ("dgm", PersistenceDiagram(homology_dimensions=(0,))),
         ("feat", DiagramFeatures())],
        memory=str(tmp_path),
    )
    first = pipe.fit_transform(X)
    n_calls = len(calls)
    assert n_calls > 0
    pipe.set_params(dgm__homology_dimensions=(0, 1), feat__homology_dimensions=None)
    pipe.fit(X)
    assert len(calls) == n_calls, "the cached embedding step ran the model again"
    assert first.shape[0] == 2
