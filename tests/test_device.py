"""The shared device rule, dtype parser and thread helper (sktopo._device)."""

import numpy as np
import pytest
import torch

from sktopo._device import resolve_device, torch_dtype, torch_threads


def test_cpu_and_auto():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("device", ["meta", torch.device("meta"), "foo", 3, None])
def test_devices_data_cannot_come_back_from_are_refused(device):
    with pytest.raises(ValueError, match="^Owner: device"):
        resolve_device(device, owner="Owner")


@pytest.mark.parametrize("kind", ["mps", "xpu"])
def test_missing_accelerator_names_the_build_and_the_fix(kind):
    available = kind == "mps" and torch.backends.mps.is_available() or (
        kind == "xpu" and hasattr(torch, "xpu") and torch.xpu.is_available())
    if available:
        assert resolve_device(kind) == kind
        return
    with pytest.raises(ValueError, match=f"no {kind} device.*device='cpu'"):
        resolve_device(kind, owner="LayerEmbedder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_missing_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("dtype, expected", [
    ("float32", torch.float32), ("float64", torch.float64), (np.float32, torch.float32),
    (np.dtype("float64"), torch.float64), (torch.float32, torch.float32),
    ("torch.float64", torch.float64)])
def test_torch_dtype_parses(dtype, expected):
    assert torch_dtype(dtype) is expected


@pytest.mark.parametrize("dtype", ["float16", torch.float16, "int64", None, True, "nonsense"])
def test_torch_dtype_refuses(dtype):
    with pytest.raises(ValueError, match="^Est: dtype must be 'float32' or 'float64'"):
        torch_dtype(dtype, owner="Est")


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_every_device_parameter_defaults_to_auto():
    # issue 9.4: one rule for device defaults (sktopo/_device.py), applied everywhere
    import inspect

    import sktopo
    from sktopo.nn import models

    owners = [getattr(sktopo, name) for name in sktopo._PUBLIC] + [models.fit_digits,
                                                                   models.load_minilm]
    checked = []
    for owner in owners:
        target = owner.__init__ if inspect.isclass(owner) else owner
        try:
            parameters = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        if "device" in parameters:
            checked.append(owner.__name__)
            assert parameters["device"].default == "auto", owner.__name__
    assert {"PersistenceDiagram", "PHDimension", "LayerEmbedder", "ReLURankRegions",
            "fit_digits"} <= set(checked)


def test_auto_does_not_import_torch_where_cuda_cannot_be(tmp_path):
    import subprocess
    import sys

    code = ("import sys, sktopo._device as d\n"
            "d._cuda_possible_without_torch.cache_clear()\n"
            "import os; real = os.path.exists\n"
            "os.path.exists = lambda p: False if p == '/proc/driver/nvidia/version' else real(p)\n"
            "assert d.resolve_device('auto') == 'cpu'\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
