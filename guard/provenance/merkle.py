"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

Leaves hash as ``SHA256(0x00 || data)`` and interior nodes as ``SHA256(0x01 || left || right)``, so a leaf can
never be passed off as a node. Proof *generation* is written against a ``subtree`` callback that returns the hash
of the complete, aligned subtree at ``(level, index)``; the log answers it from stored nodes, which is what makes
proofs O(log n) without reading the whole log. Proof *verification* follows RFC 9162 sections 2.1.3.2 and
2.1.4.2 and needs nothing but the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from core.errors import VerificationError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of leaves [index << level, (index + 1) << level)
SubtreeLookup = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """Root of a tree over already-hashed leaves, in O(n) time and O(log n) memory."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Frontier:
    """The compact range of a growing tree: one hash per complete subtree on its right edge.

    ``append`` returns the complete subtrees a new leaf closes, as ``(level, index, hash)``, which is exactly the
    set of interior nodes the log stores for it.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)  # largest subtree first
        if len(self.hashes) != bin(size).count("1"):
            raise ValueError("frontier does not match its tree size")

    @staticmethod
    def coordinates(size: int) -> list[tuple[int, int]]:
        """(level, index) of each complete subtree in the compact range of a tree of ``size`` leaves."""
        coords, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                coords.append((level, start >> level))
                start += 1 << level
        return coords

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        index = self.size
        closed = []
        h, level = leaf, 0
        while index >> level & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            closed.append((level, index >> level, h))
        self.hashes.append(h)
        self.size += 1
        return closed

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h


def subtree_hash(start: int, end: int, lookup: SubtreeLookup) -> bytes:
    """Hash of leaves [start, end) from stored complete subtrees (RFC 9162 MTH over that range)."""
    n = end - start
    if n == 1 or (n & (n - 1) == 0 and start % n == 0):
        level = n.bit_length() - 1
        return lookup(level, start >> level)
    k = _split(n)
    return node_hash(subtree_hash(start, start + k, lookup), subtree_hash(start + k, end, lookup))


def root(size: int, lookup: SubtreeLookup) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, lookup)


def inclusion_proof(index: int, size: int, lookup: SubtreeLookup) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[0:size])."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree_hash(start + k, end, lookup))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, lookup))
            start += k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, lookup: SubtreeLookup) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(size1, D[0:size2])."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end, lookup))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(subtree_hash(start + k, end, lookup))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree_hash(start, start + k, lookup))

    subproof(size1, 0, size2, True)
    return proof


def nodes_needed(compute: Callable[[SubtreeLookup], object]) -> list[tuple[int, int]]:
    """The (level, index) coordinates ``compute`` reads, so a store can fetch them in one query."""
    seen: dict[tuple[int, int], None] = {}

    def record(level: int, index: int) -> bytes:
        seen[(level, index)] = None
        return EMPTY_ROOT

    compute(record)
    return list(seen)


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Raise ``VerificationError`` unless ``proof`` shows leaf ``index`` is in the tree with ``expected_root``."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash("proof element", p)
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short for the tree size")
    if r != expected_root:
        raise VerificationError("inclusion proof does not lead to the expected root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise ``VerificationError`` unless the tree (size2, root2) extends the tree (size1, root1)."""
    if size1 > size2:
        raise VerificationError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == size2:
        if proof:
            raise VerificationError("trees of equal size need an empty consistency proof")
        if root1 != root2:
            raise VerificationError("trees of equal size have different roots")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise VerificationError("an empty tree must have the empty root")
        return
    if size1 == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing")
    if not proof:
        raise VerificationError("consistency proof is empty")
    for p in proof:
        _check_hash("proof element", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short for the tree sizes")
    if fr != root1:
        raise VerificationError("consistency proof does not lead to the first root")
    if sr != root2:
        raise VerificationError("consistency proof does not lead to the second root")
