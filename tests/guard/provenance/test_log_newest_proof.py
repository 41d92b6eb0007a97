"""The inclusion proof of the leaf a log just appended is kept from the append (no query): it must be the proof
the stored tree gives, at every tree size, and it must verify."""

from __future__ import annotations

from guard.provenance.log import ProvenanceLog
from tests.guard.provenance.helpers import make_record


def test_kept_proof_of_the_newest_leaf_equals_the_stored_trees(tmp_path):
    writer = ProvenanceLog(tmp_path / "log.db")
    reader = ProvenanceLog(tmp_path / "log.db")  # has appended nothing, so it reads every proof from storage
    for size in range(1, 70):
        batch = 1 + size % 3
        entries = writer.append_batch([make_record(size * 10 + k) for k in range(batch)])
        last = entries[-1]
        kept = writer.inclusion_proof(last.index, last.tree_size)
        assert kept == reader.inclusion_proof(last.index, last.tree_size)
        assert kept.root == last.root
        kept.verify()
        kept.hashes.clear()  # a caller changing its copy does not change the kept proof
        assert writer.inclusion_proof(last.index, last.tree_size) == reader.inclusion_proof(last.index, last.tree_size)
