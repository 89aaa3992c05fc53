"""Activation patterns as packed bits, their hashes and their exact deduplication.

An activation pattern of one input over L ReLU layers is stored as L packed-bit arrays
(``numpy.packbits`` of the 0/1 pattern of each layer, padded to whole 64-bit words). Region ids
are a deterministic 64-bit hash of the words of layers 1..l (so the id at layer l names the
linear region of the map input -> layer l, and the id at the last layer names the full region);
the same pattern gives the same id in every call and on every machine. Deduplication is exact:
hash groups are verified word by word and a collision falls back to ``numpy.unique``.
"""

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def pack_pattern(pattern):
    """Pack a boolean (n, units) numpy array into (n, words) uint64 words (zero padded)."""
    packed = np.packbits(pattern, axis=1)
    pad = (-packed.shape[1]) % 8
    if pad or packed.shape[1] == 0:
        packed = np.pad(packed, ((0, 0), (0, pad if packed.shape[1] else 8)))
    return np.ascontiguousarray(packed).view(np.uint64)


def unpack_pattern(words, units):
    """Inverse of :func:`pack_pattern`: (n, words) uint64 -> boolean (n, units)."""
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=1, count=units)
    return bits.astype(bool)


def _splitmix(h):
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    return h ^ (h >> np.uint64(31))


def cumulative_hashes(words_per_layer):
    """Return an (n, L) int64 array: column l hashes the words of layers 0..l."""
    n = words_per_layer[0].shape[0]
    h = np.full(n, 0x2545F4914F6CDD1D, dtype=np.uint64)
    out = np.empty((n, len(words_per_layer)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for layer, words in enumerate(words_per_layer):
            # The layer index and its word count enter the hash, so patterns of different
            # layers never alias.
            h = _splitmix(h ^ (np.uint64(layer + 1) * _GOLDEN + np.uint64(words.shape[1])))
            for j in range(words.shape[1]):
                h = _splitmix(h ^ words[:, j])
            out[:, layer] = h
    return out.view(np.int64)


def unique_regions(full_hash, words):
    """Exact deduplication of full patterns.

    Parameters
    ----------
    full_hash : (n,) int64 array, the hash of each input's whole pattern.
    words : (n, W) uint64 array, all layers' packed words side by side.

    Returns
    -------
    region_hash : (R,) int64, one id per distinct pattern.
    first : (R,) int, index of the first input with that pattern.
    inverse : (n,) int, region number of each input.
    """
    region_hash, inverse = np.unique(full_hash, return_inverse=True)
    first = np.full(region_hash.size, full_hash.size, dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(full_hash.size))
    if np.array_equal(words, words[first[inverse]]):
        return region_hash, first, inverse
    # A 64-bit hash collision (probability about n^2 / 2^65): deduplicate on the words.
    _, first, inverse = np.unique(words, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    first, inverse = first[order], rank[inverse]
    return full_hash[first], first, inverse


def local_codes(words):
    """Exact codewords of one layer's own patterns.

    Parameters
    ----------
    words : (n, W) uint64 array, one layer's packed pattern per input.

    Returns
    -------
    codes : (n,) int64, equal exactly when the patterns are equal, numbered 0, 1, ... in
        order of first appearance among the inputs.
    first : (K,) int, index of the first input with each codeword.
    """
    # The hash of this layer alone (not of layers 1..l): cumulative_hashes of a one-layer list.
    layer_hash = cumulative_hashes([words])[:, 0]
    _, first, inverse = unique_regions(layer_hash, words)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int64), first[order]
