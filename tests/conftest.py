import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# OpenMP threads (torch's intra-op pool) sleep between parallel regions instead of spinning.
# Spinning made the suite look hung (issue 23, item 16): with one other busy process on a
# 2-core machine, a thread that waits at a barrier for its descheduled partner burns a core,
# and torch-heavy tests ran 10-35x slower (a ConvChain test 2.2 s -> 79 s, a core busy all the
# while); with PASSIVE, 9 s. Read when the OpenMP runtime loads: before torch is imported,
# and inherited by the CLI and example subprocesses.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _cuda_available():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
