"""Bit-parallel signal vectors: one uint64 word holds one net's value in 64 stream samples.

Sample k of a stream lives in bit ``k % 64`` of word ``k // 64``. Every simulator in
``axonnx.hw`` works on these packed vectors, so one numpy operation evaluates a gate for 64
operand pairs at once.
"""

from __future__ import annotations

import numpy as np

WORD = 64


def n_words(samples: int) -> int:
    return (samples + WORD - 1) // WORD


def pack(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean array ``[..., K]`` into ``[..., ceil(K/64)]`` uint64 words."""
    bits = np.asarray(bits, dtype=bool)
    k = bits.shape[-1]
    pad = n_words(k) * WORD - k
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), bool)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack(words: np.ndarray, samples: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``[..., W]`` uint64 words to ``[..., samples]`` booleans."""
    words = np.ascontiguousarray(np.asarray(words, dtype=np.uint64)).astype("<u8", copy=False)
    raw = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")
    return raw[..., :samples].astype(bool)


def int_planes(values: np.ndarray, bits: int) -> list[np.ndarray]:
    """Bit planes (LSB first) of two's-complement (or unsigned) integers, packed."""
    values = np.asarray(values, dtype=np.int64)
    planes = ((values[None, :] >> np.arange(bits)[:, None]) & 1).astype(bool)
    packed = pack(planes)
    return [packed[i] for i in range(bits)]


def planes_to_int(planes: list[np.ndarray], samples: int, signed: bool) -> np.ndarray:
    """Integers from packed bit planes (LSB first); the top plane is the sign if ``signed``."""
    out = np.zeros(samples, dtype=np.int64)
    for i, plane in enumerate(planes):
        out |= unpack(plane, samples).astype(np.int64) << i
    if signed and planes:
        top = len(planes) - 1
        out -= (out >> top & 1) << (top + 1)
    return out


def valid_mask(samples: int) -> np.ndarray:
    """Words with the bits of real samples set (the padding of the last word cleared)."""
    mask = np.full(n_words(samples), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    rest = samples % WORD
    if rest:
        mask[-1] = np.uint64((1 << rest) - 1)
    return mask


def previous(words: np.ndarray, samples: int) -> np.ndarray:
    """Each sample's predecessor in the stream, cyclically (sample 0 follows the last one)."""
    words = np.asarray(words, dtype=np.uint64)
    prev = words << np.uint64(1)
    if words.shape[-1] > 1:
        prev[..., 1:] |= words[..., :-1] >> np.uint64(WORD - 1)
    last = samples - 1
    last_bit = (words[..., last // WORD] >> np.uint64(last % WORD)) & np.uint64(1)
    prev[..., 0] = (prev[..., 0] & ~np.uint64(1)) | last_bit
    return prev


def popcount(words: np.ndarray) -> int:
    return int(np.bitwise_count(np.asarray(words, dtype=np.uint64)).sum())


def ones(samples: int) -> np.ndarray:
    return valid_mask(samples)


def zeros(samples: int) -> np.ndarray:
    return np.zeros(n_words(samples), dtype=np.uint64)
