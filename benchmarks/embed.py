"""LayerEmbedder overhead against a plain forward pass with no hooks, on the same inputs.

For each case the anchor is the same model run batch by batch under ``torch.no_grad`` in eval
mode with no hooks (the least any extraction must cost); ``LayerEmbedder`` then hooks the
listed layers, reduces each batch on the device and copies it to the CPU. The ratio
embed / forward is the overhead (target: at most 1.10 on the CPU). Times are the best of
``--repeats`` runs.

    python benchmarks/embed.py                     # CPU cases
    python benchmarks/embed.py --device cuda       # + ResNet-style CNN, 10,000 32x32 inputs
    python benchmarks/embed.py --study-a           # end-to-end study A profile (below)
    python benchmarks/embed.py --study-a --quick   # the same at a smaller size

The study A case (issue 10, item 6) runs the whole per-layer profile of study A: a
ResNet-18-sized CIFAR network (built here by hand: torchvision is not a dependency) on 2,000
random 3x32x32 inputs, 6 layers mean-pooled by LayerEmbedder (float32 pooling on the maps: no
64x32x32 map is ever flattened or cast to float64), then H0+H1 persistence, PH dimension and
TwoNN per layer. It prints the breakdown: the plain forward pass (no hooks), what extraction
adds to it, each topology estimator, and ripser.py on the same clouds as the engine anchor.
The target: time outside the model's forward pass and the topology estimators (hooks,
reductions, copies, glue) at most the forward pass plus the topology estimators.
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

from sktopo.nn.embedder import LayerEmbedder
from sktopo.nn.models import DigitsCNN, DigitsMLP


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """ResNet-20-style CIFAR network: stem, 3 stages of ``depth`` blocks, pooling, head."""

    def __init__(self, widths=(16, 32, 64), depth=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        c_in = widths[0]
        for k, width in enumerate(widths, start=1):
            blocks = []
            for b in range(depth):
                blocks.append(BasicBlock(c_in, width, 2 if (b == 0 and k > 1) else 1))
                c_in = width
            setattr(self, f"layer{k}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, 10)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


class TorchvisionBlock(nn.Module):
    """torchvision's BasicBlock: ONE ``relu`` module applied twice per forward pass."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """ResNet-18 for CIFAR (3x3 stem, no max pool): 4 stages of 2 blocks, widths x1..x8."""

    def __init__(self, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        c_in = width
        for k, mult in enumerate((1, 2, 4, 8), start=1):
            c_out = width * mult
            setattr(self, f"layer{k}", nn.Sequential(
                TorchvisionBlock(c_in, c_out, 1 if k == 1 else 2), TorchvisionBlock(c_out, c_out, 1)))
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def study_a_profile(n_inputs, width, batch_size, repeats):
    """The end-to-end study A profile; returns the breakdown rows (name, seconds)."""
    import ripser

    from sktopo import PersistenceDiagram, PHDimension, TwoNN

    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((n_inputs, 3, 32, 32), dtype=np.float32))
    torch.manual_seed(0)
    model = ResNet18(width).eval()
    layers = ["relu", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    embedder = LayerEmbedder(model, layers, device="cpu", batch_size=batch_size).fit()
    plain_forward(model, x[:batch_size], batch_size, torch.device("cpu"))  # warm-up
    (t_plain, t_embed), (c_plain, c_embed) = interleaved_times(
        [lambda: plain_forward(model, x, batch_size, torch.device("cpu")),
         lambda: embedder.transform(x)], repeats)
    clouds = embedder.transform(x)
    assert all(c.dtype == np.float32 for c in clouds), "clouds must stay float32"

    def timed(fn):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        return (time.perf_counter() - start, time.process_time() - start_cpu), out

    t_pd, diagrams = timed(lambda: PersistenceDiagram((0, 1), random_state=0).fit_transform(clouds))
    t_phdim, _ = timed(lambda: PHDimension(random_state=0).fit_transform(clouds))
    t_twonn, _ = timed(lambda: TwoNN(random_state=0).fit_transform(clouds))
    t_ripser, anchor = timed(lambda: [ripser.ripser(np.asarray(c, dtype=np.float64), maxdim=1)
                                      for c in clouds])
    for diagram, reference in zip(diagrams, anchor):
        for q in (0, 1):
            assert len(diagram[q]) == len(reference["dgms"][q]), "diagrams disagree with ripser"
    # process CPU time is the steadier measure on a shared machine (waiting is not counted)
    forward = (t_plain.min(), c_plain.min())
    extraction = (t_embed.min() - t_plain.min(), c_embed.min() - c_plain.min())
    rows = [
        ("model forward pass (plain, no hooks)", forward),
        ("extraction added by LayerEmbedder", extraction),
        ("PersistenceDiagram H0+H1", t_pd),
        ("PHDimension", t_phdim),
        ("TwoNN", t_twonn),
        ("(anchor) ripser.py H0+H1 on the same clouds", t_ripser),
    ]
    budget = [forward[k] + t_pd[k] + t_phdim[k] + t_twonn[k] for k in (0, 1)]
    return rows, dict(outside=extraction, budget=budget, shapes=[c.shape for c in clouds],
                      names=list(clouds.index))


def print_study_a(n_inputs, width, batch_size, repeats):
    rows, info = study_a_profile(n_inputs, width, batch_size, repeats)
    print(f"study A profile: ResNet-18 (width {width}) on {n_inputs} CIFAR-sized inputs, "
          f"{len(info['names'])} layers {info['names']}, clouds {info['shapes']}")
    counted = [t for name, t in rows if not name.startswith("(anchor)")]
    total = [sum(t[k] for t in counted) for k in (0, 1)]
    print(f"  {'':46s} {'wall s':>8s} {'cpu s':>8s} {'cpu %':>6s}")
    for name, (wall, cpu) in rows:
        share = "" if name.startswith("(anchor)") else f"{100 * cpu / total[1]:6.1f}"
        print(f"  {name:46s} {wall:8.2f} {cpu:8.2f} {share}")
    print(f"  {'total (without the anchor)':46s} {total[0]:8.2f} {total[1]:8.2f}")
    for k, kind in enumerate(("wall", "cpu")):
        ratio = info["outside"][k] / info["budget"][k]
        print(f"{kind}: time outside the forward pass and the topology estimators "
              f"{info['outside'][k]:.2f} s = {ratio:.3f} x (forward + estimators) [target <= 1]")
    print("(best of the repeats for the forward pass and extraction; one run for the rest; "
          "negative: within the noise of a shared machine)")


def plain_forward(model, x, batch_size, device):
    model.to(device).eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            model(x[start:start + batch_size].to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_times(fns, repeats):
    """Wall and process-CPU times of each function, run alternately so that load changes hit
    both alike. CPU time is steadier than wall time on a shared machine (it does not count
    waiting for a core), so it is reported too."""
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - start)
            cpu[k].append(time.process_time() - start_cpu)
    return [np.array(t) for t in wall], [np.array(t) for t in cpu]


def run_case(name, model, x, layers, batch_size, device, repeats, **embed_kw):
    torch.manual_seed(0)
    model.to(device).eval()
    embedder = LayerEmbedder(model, layers, device=device, batch_size=batch_size,
                             **embed_kw).fit(None)
    plain_forward(model, x[:batch_size], batch_size, device)        # warm-up
    embedder.transform(x[:batch_size])
    (t_plain, t_embed), (c_plain, c_embed) = interleaved_times(
        [lambda: plain_forward(model, x, batch_size, device), lambda: embedder.transform(x)],
        repeats)
    clouds = embedder.transform(x[: 2 * batch_size])
    shape = clouds.iloc[-1].shape if embedder.unit == "dataset" else clouds.iloc[0, -1].shape
    return dict(case=name, device=str(device), n=x.shape[0], layers=len(embedder.layer_names_),
                cell=shape, forward=t_plain.min(), embed=t_embed.min(),
                ratio=t_embed.min() / t_plain.min(),
                ratio_median=np.median(t_embed) / np.median(t_plain),
                ratio_cpu=c_embed.min() / c_plain.min(),
                extra_ms=1e3 * (c_embed.min() - c_plain.min()) / -(-x.shape[0] // batch_size))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steadier timings on shared machines)")
    parser.add_argument("--n-gpu", type=int, default=10_000, help="inputs for the GPU case")
    parser.add_argument("--study-a", action="store_true",
                        help="only the end-to-end study A profile (ResNet-18, 2,000 inputs)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (study A: 500 inputs, width 16; 2 repeats)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats = min(args.repeats, 2)
    if args.study_a:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
        if args.quick:
            print_study_a(500, 16, 250, args.repeats)
        else:
            print_study_a(2000, 64, 250, min(args.repeats, 2))
        return
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    digits = torch.as_tensor(rng.random((4096, 64), dtype=np.float32))
    images = digits.reshape(-1, 1, 8, 8)
    cifar_cpu = torch.as_tensor(rng.standard_normal((1024, 3, 32, 32), dtype=np.float32))

    cpu = torch.device("cpu")
    rows = [
        run_case("DigitsMLP, 3 ReLU layers", DigitsMLP(random_state=0), digits, nn.ReLU, 256,
                 cpu, args.repeats),
        run_case("DigitsMLP, 3 ReLU layers, batch 2048", DigitsMLP(random_state=0), digits,
                 nn.ReLU, 2048, cpu, args.repeats),
        run_case("DigitsCNN, 3 ReLU maps, mean", DigitsCNN(random_state=0), images, nn.ReLU,
                 256, cpu, args.repeats),
        run_case("DigitsCNN, all 10 modules", DigitsCNN(random_state=0), images, "*", 256,
                 cpu, args.repeats),
        run_case("ResNet-20 style, 9 blocks, mean", SmallResNet(), cifar_cpu, "layer?.?", 128,
                 cpu, args.repeats),
        run_case("ResNet-20 style, 3 stages, flatten+k=64", SmallResNet(), cifar_cpu,
                 "layer?", 128, cpu, args.repeats, reduce="flatten", n_components=64,
                 random_state=0),
        run_case("ResNet-20 style, 3 stages, sample", SmallResNet(), cifar_cpu, "layer?", 128,
                 cpu, args.repeats, unit="sample"),
        run_case("ResNet-20 style, stem only (early stop)", SmallResNet(), cifar_cpu, "stem",
                 128, cpu, args.repeats),
    ]
    if device.type == "cuda":
        cifar = torch.as_tensor(rng.standard_normal((args.n_gpu, 3, 32, 32), dtype=np.float32))
        rows += [
            run_case("ResNet-20 style, 9 blocks, mean", SmallResNet(), cifar, "layer?.?", 512,
                     device, args.repeats),
            run_case("ResNet-20 style, 3 stages, flatten+k=64", SmallResNet(), cifar, "layer?",
                     512, device, args.repeats, reduce="flatten", n_components=64,
                     random_state=0),
            run_case("ResNet-20 style, stage 3, sample", SmallResNet(), cifar, "layer3", 512,
                     device, args.repeats, unit="sample"),
        ]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    header = (f"{'case':42s} {'device':6s} {'n':>6s} {'layers':>6s} {'cell':>12s} "
              f"{'forward s':>9s} {'embed s':>8s} {'ratio':>6s} {'(median)':>8s} {'(cpu)':>6s} {'ms/batch':>8s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:42s} {r['device']:6s} {r['n']:6d} {r['layers']:6d} "
              f"{str(r['cell']):>12s} {r['forward']:9.3f} {r['embed']:8.3f} {r['ratio']:6.2f} "
              f"{r['ratio_median']:8.2f} {r['ratio_cpu']:6.2f} {r['extra_ms']:8.2f}")
    print("ratio = best embed wall time / best plain forward wall time; (median) the ratio of "
          "median wall times;\n(cpu) the ratio of best process CPU times (steadier on a shared "
          "machine; on a GPU it misses device time); ms/batch the extra CPU time per batch.\n"
          "Early stop can make a ratio < 1.")


if __name__ == "__main__":
    main()
