"""Content fingerprints that survive light edits: MinHash signatures of text and 64-bit perceptual hashes of images.

Both the ``copyright`` detector (is this output a near copy of a protected work?) and ``guard trace`` (which
logged record made this file?) compare fingerprints, so the recipe lives in one place and is versioned: a
signature stored in a provenance record must be comparable with one computed years later, which is why the
MinHash scheme, seed and shingle size are pinned and named in ``TEXT_SCHEME``.

Text: NFKC + casefold, every run of non-word characters becomes one space, then overlapping character 5-grams
(robust to a changed word, punctuation or case, and to scripts without spaces). MinHash with 128 permutations
(datasketch, ``affine32`` scheme, seed 1). For storage only the low 8 bits of each value are kept ("b-bit
MinHash", Li & König 2010): 128 bytes per text, and the Jaccard similarity is still estimated without bias from
the share of equal bytes, corrected for the 1/256 chance that two different values agree in their low byte.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

import numpy as np

from core.errors import InputError

NUM_PERM = 128
SEED = 1
SHINGLE = 5
BITS = 8
TEXT_SCHEME = f"minhash-affine32-s{SEED}-c{SHINGLE}-{NUM_PERM}x{BITS}"
LSH_BANDS = 16  # 16 bands of 8 rows: a pair with Jaccard 0.8 shares a band with probability 0.95, 0.9 → 0.9999
LSH_ROWS = NUM_PERM // LSH_BANDS
PHASH_BITS = 64

_NON_WORD = re.compile(r"[\W_]+")
_CHANCE = 1.0 / (1 << BITS)


def normalize_text(text: str) -> str:
    """Case, Unicode form, punctuation and spacing removed: what survives copy-and-paste and light edits."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def words(text: str) -> list[str]:
    return normalize_text(text).split()


def shingles(text: str, size: int = SHINGLE) -> set[str]:
    """Overlapping character n-grams of the normalized text (the whole text when it is shorter)."""
    norm = normalize_text(text)
    if len(norm) <= size:
        return {norm}
    return {norm[i:i + size] for i in range(len(norm) - size + 1)}


def minhash(text: str):
    """A datasketch ``MinHash`` of the text's shingles, with the pinned scheme."""
    from datasketch import MinHash

    m = MinHash(num_perm=NUM_PERM, seed=SEED, scheme="affine32", permutations=_permutations())
    m.update_batch([s.encode("utf-8") for s in shingles(text)])
    return m


@functools.lru_cache(maxsize=1)
def _permutations():
    """The pinned scheme's permutation parameters; datasketch would draw them again for every text."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=SEED, scheme="affine32").permutations


def bbit_signature(text: str) -> bytes:
    """The 128-byte b-bit signature stored for a text (low byte of each MinHash value)."""
    return (minhash(text).hashvalues & 0xFF).astype(np.uint8).tobytes()


def bbit_similarity(a: bytes, b: bytes) -> float:
    """Unbiased estimate of the Jaccard similarity of two texts' shingle sets from their b-bit signatures."""
    if len(a) != len(b) or not a:
        raise InputError(f"signatures differ in length ({len(a)} vs {len(b)} bytes)")
    equal = np.count_nonzero(np.frombuffer(a, np.uint8) == np.frombuffer(b, np.uint8)) / len(a)
    return float(min(1.0, max(0.0, (equal - _CHANCE) / (1.0 - _CHANCE))))


_BAND_SALT = np.arange(1, LSH_BANDS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def lsh_keys_many(signatures: np.ndarray) -> np.ndarray:
    """Signed 64-bit LSH band keys, shape (n, LSH_BANDS), for n signatures given as an (n, NUM_PERM) uint8 array.

    Each band's 8 bytes, salted with the band number, go through the splitmix64 finaliser: two signatures share
    a band's key exactly when they agree on the whole band (up to 2**-64 collisions), and it is vectorised, which
    matters when 10^6 records are indexed.
    """
    if signatures.ndim != 2 or signatures.shape[1] != NUM_PERM or signatures.dtype != np.uint8:
        raise InputError(f"expected an (n, {NUM_PERM}) uint8 array of signatures, got {signatures.shape}")
    x = np.ascontiguousarray(signatures).view("<u8") ^ _BAND_SALT
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x.view(np.int64)


def lsh_keys(signature: bytes) -> list[int]:
    """One signed 64-bit key per LSH band: two signatures that agree on a whole band share its key."""
    if len(signature) != NUM_PERM:
        raise InputError(f"signature is {len(signature)} bytes, expected {NUM_PERM}")
    return lsh_keys_many(np.frombuffer(signature, dtype=np.uint8)[None, :])[0].tolist()


def phash_int(image) -> int:
    """The image's 64-bit DCT perceptual hash (imagehash ``phash``) as an unsigned integer."""
    import imagehash

    return int(str(imagehash.phash(image.convert("RGB"))), 16)


def phash_from_hex(value: str) -> int:
    return int(value, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def hamming_many(query: int, hashes: Iterable[int]) -> np.ndarray:
    """Hamming distances from one 64-bit hash to many, vectorised."""
    arr = np.fromiter(hashes, dtype=np.uint64)
    x = arr ^ np.uint64(query)
    return np.bitwise_count(x).astype(np.int64)
