"""The first ReLURankRegions.fit of a process loads nothing of torch or sktopo (issue 23, item 10).

Forward-mode AD loads torch modules on first use (``torch._decomp.decompositions_for_jvp``;
``torch._dynamo`` and sympy on the first dual tensor added to a tensor without a tangent, a
Linear's bias): 870 modules, about 2 s, were imported inside the first fit. They are now loaded
when ``sktopo.nn.relu_rank`` is imported (``sktopo.nn._relu_network._load_forward_ad``), with
the rank engine, so the first fit costs what every later fit costs. Module counts, not times:
wall-clock figures are noise on a shared machine.
"""

import subprocess
import sys

_CODE = """
import sys
import torch
from torch import nn
from sktopo import ReLURankRegions

torch.manual_seed(0)
net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU()).double()
X = torch.randn(60, 12, dtype=torch.float64)
before = set(sys.modules)
ReLURankRegions(net).fit(X)
new = sorted(set(sys.modules) - before)
print(" ".join(m for m in new if m.split(".")[0] in ("torch", "sympy", "functorch", "sktopo")))
"""


def test_the_first_fit_imports_nothing_of_torch_or_sktopo():
    out = subprocess.run([sys.executable, "-c", _CODE], check=True, capture_output=True,
                         text=True, timeout=300).stdout.strip()
    assert out == "", f"imported inside the first fit: {out[:500]}"
