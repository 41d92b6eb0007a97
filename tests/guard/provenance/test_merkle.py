"""RFC 6962 hashing and proofs: the transparency-dev vectors, and our proofs checked against our verifier."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from core.errors import VerificationError
from guard.provenance import merkle
from tests.fixtures.shared import SHARED, shared_path

VECTORS = SHARED / "interop" / "rfc6962"


def _vectors(kind: str) -> list:
    if not VECTORS.is_dir():
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=f"{VECTORS} is not present"))]
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return files


def _b64(value: str) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(case: dict) -> list[bytes]:
    return [_b64(p) for p in case["proof"] or []]


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case), _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), _proof(case))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def _tree(n: int) -> tuple[list[bytes], merkle.SubtreeLookup]:
    leaves = [merkle.leaf_hash(b"leaf %d" % i) for i in range(n)]

    def lookup(level: int, index: int) -> bytes:
        return merkle.root_from_leaves(leaves[index << level : (index + 1) << level])

    return leaves, lookup


def test_root_matches_rfc_example() -> None:
    # Root of the 8-leaf tree in the vectors' inclusion/1 case is reproduced from its leaf and proof.
    case = json.loads(shared_path("interop", "rfc6962", "inclusion", "1", "happy-path.json").read_text())
    merkle.verify_inclusion(0, 8, _b64(case["leafHash"]), _proof(case), _b64(case["root"]))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 13, 16, 33])
def test_generated_proofs_verify(size: int) -> None:
    leaves, lookup = _tree(size)
    root = merkle.root(size, lookup)
    assert root == merkle.root_from_leaves(leaves)
    for i in range(size):
        merkle.verify_inclusion(i, size, leaves[i], merkle.inclusion_proof(i, size, lookup), root)
    for m in range(1, size + 1):
        old_root = merkle.root_from_leaves(leaves[:m])
        merkle.verify_consistency(m, size, old_root, root, merkle.consistency_proof(m, size, lookup))


def test_wrong_leaf_is_rejected() -> None:
    leaves, lookup = _tree(10)
    proof = merkle.inclusion_proof(3, 10, lookup)
    with pytest.raises(VerificationError, match="expected root"):
        merkle.verify_inclusion(3, 10, leaves[4], proof, merkle.root(10, lookup))


def test_frontier_closes_the_stored_nodes() -> None:
    leaves, lookup = _tree(11)
    frontier = merkle.Frontier()
    for leaf in leaves:
        for level, index, h in frontier.append(leaf):
            assert h == lookup(level, index)
    assert frontier.root() == merkle.root_from_leaves(leaves)
    assert merkle.Frontier.coordinates(11) == [(3, 0), (1, 4), (0, 10)]
