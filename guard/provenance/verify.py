"""Full verification of a provenance log from storage.

Recomputes every leaf hash from the stored record bytes, checks every record's index against its position,
rebuilds the tree and compares every stored interior node, recomputes the root at every checkpoint's size and
checks each checkpoint's signature. Any change to a stored record, a stored hash, the order or the count of
records, or a checkpoint is caught; the report names the first bad record index and the first bad checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import VerificationError
from guard.provenance import merkle
from guard.provenance.checkpoint import SignedCheckpoint
from guard.provenance.log import InclusionProof, ProvenanceLog


@dataclass
class VerifyReport:
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checkpoints_checked: int = 0
    first_bad_index: int | None = None
    first_bad_checkpoint: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_bad_index is None and self.first_bad_checkpoint is None and not self.problems

    def bad_record(self, index: int, problem: str) -> None:
        if self.first_bad_index is None or index < self.first_bad_index:
            self.first_bad_index = index
        self._note(f"record {index}: {problem}")

    def bad_checkpoint(self, checkpoint_id: int, problem: str) -> None:
        if self.first_bad_checkpoint is None:
            self.first_bad_checkpoint = checkpoint_id
        self._note(f"checkpoint {checkpoint_id}: {problem}")

    def _note(self, problem: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_index": self.first_bad_index,
            "first_bad_checkpoint": self.first_bad_checkpoint,
            "problems": self.problems,
        }


def _check_bodies(url: str, start: int, stop: int) -> list[tuple[int, str]]:
    """Problems with the stored records in [start, stop): bytes that do not hash to the stored leaf hash,
    records whose own index disagrees with where they are stored, lookup columns that differ from the record and
    erasable values that do not match their commitments (``log.row_problems``). Runs in a worker process."""
    import orjson  # parses every record; the standard library's parser was 40% of a full verification

    from guard.provenance.log import ROW_COLUMNS, ProvenanceLog, row_problems

    log = ProvenanceLog(url, readonly=True)
    problems: list[tuple[int, str]] = []
    where = f"idx >= {int(start)} AND idx < {int(stop)}"
    with log.engine.connect() as conn:
        private: dict[int, list[tuple[str, bytes, str]]] = {}
        for idx, name, salt, value in conn.exec_driver_sql(
                f"SELECT idx, field, salt, value FROM guard_private WHERE {where}"):
            private.setdefault(int(idx), []).append((name, bytes(salt), value))
        rows = conn.exec_driver_sql(f"SELECT {', '.join(ROW_COLUMNS)} FROM guard_records WHERE {where} ORDER BY idx")
        for idx, *columns, body, leaf in rows:  # ROW_COLUMNS: idx, the lookup columns, body, leaf_hash
            idx, body = int(idx), bytes(body)
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = None
            problems += [(idx, p) for p in row_problems(idx, columns, body, bytes(leaf), data,
                                                         private.pop(idx, ()))]
            if len(problems) >= 50:
                break
        else:
            problems += [(idx, "erasable values stored for a record that does not exist") for idx in sorted(private)]
    log.close()
    return problems


def verify_log(
    log: ProvenanceLog,
    public_key,
    *,
    workers: int | None = None,
    chunk: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify everything in ``log`` against the log's ``public_key`` (an Ed25519 public key).

    Record bytes are checked in ``workers`` processes (default: one per core for logs past one ``chunk``) while
    this process rebuilds the tree from the stored leaf hashes and compares nodes and checkpoints; a record whose
    bytes do not match its stored leaf hash is caught by the workers, so the tree may be built from stored hashes.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    from sqlalchemy import func, literal_column, select

    report = VerifyReport()
    t_node = log.tables.tables["guard_nodes"]
    total = log.size()

    # Checkpoints: parse, check signature and origin, then remember the root each one claims at its size.
    claimed: dict[int, list[tuple[int, bytes]]] = {}
    max_checkpoint_size = 0
    for cid, signed, _raw in log.checkpoints():
        report.checkpoints_checked += 1
        if signed is None:
            report.bad_checkpoint(cid, "malformed signed note")
            continue
        if signed.checkpoint.origin != log.origin:
            report.bad_checkpoint(cid, f"origin {signed.checkpoint.origin!r} is not this log's {log.origin!r}")
            continue
        try:
            signed.verify(log.origin, public_key)
        except VerificationError as exc:
            report.bad_checkpoint(cid, str(exc))
            continue
        claimed.setdefault(signed.checkpoint.size, []).append((cid, signed.checkpoint.root))
        max_checkpoint_size = max(max_checkpoint_size, signed.checkpoint.size)

    # Record bytes: in worker processes for big logs, here for small ones.
    ranges = [(s, min(total, s + chunk)) for s in range(0, total, chunk)]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    pool = None
    if workers > 1 and len(ranges) > 1:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        body_jobs = [pool.submit(_check_bodies, log.url, a, b) for a, b in ranges]
    else:
        body_jobs = None

    # Stored interior nodes, in the order the frontier closes them: by the last leaf they cover, then level.
    closes_at = ((t_node.c.idx + 1) * func.power(2, t_node.c.level)) if log.dialect == "postgresql" else \
        literal_column("((idx + 1) << level)")
    node_query = select(t_node.c.level, t_node.c.idx, t_node.c.hash).order_by(closes_at, t_node.c.level)

    frontier = merkle.Frontier()
    expected = 0
    bad_nodes: list[tuple[int, int, str]] = []  # (first, end, problem): node mismatches, reported after the bodies
    try:
        with log.engine.connect() as node_conn, log.engine.connect() as leaf_conn:
            node_rows = node_conn.execution_options(stream_results=True, yield_per=chunk).execute(node_query)
            leaf_rows = leaf_conn.execution_options(stream_results=True, yield_per=chunk).exec_driver_sql(
                "SELECT idx, leaf_hash FROM guard_records ORDER BY idx")
            pending_node = next(node_rows, None)
            for idx, stored_leaf in leaf_rows:
                if idx != expected:
                    report.bad_record(expected, f"missing (next stored record has index {idx})")
                    break
                for level, node_idx, h in frontier.append(bytes(stored_leaf)):
                    start, end = node_idx << level, (node_idx + 1) << level
                    if pending_node is None or (int(pending_node.level), int(pending_node.idx)) != (level, node_idx):
                        bad_nodes.append((start, end, f"Merkle node ({level}, {node_idx}) is missing"))
                        continue
                    if bytes(pending_node.hash) != h:
                        bad_nodes.append((start, end, f"Merkle node ({level}, {node_idx}) does not match: one of "
                                          f"records [{start}, {end}) was rewritten with a matching leaf hash"))
                    pending_node = next(node_rows, None)
                expected += 1
                for cid, root in claimed.get(frontier.size, []):
                    if root != frontier.root():
                        report.bad_checkpoint(cid, f"root at size {frontier.size} differs from the signed root")
                if progress and expected % chunk == 0:
                    progress(expected, total)
        body_problems = []
        if body_jobs is None:
            for a, b in ranges:
                body_problems += _check_bodies(log.url, a, b)
        else:
            for job in body_jobs:
                body_problems += job.result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    for i, message in body_problems:
        report.bad_record(i, message)
    # A node over a record already found bad is explained by it (a changed leaf hash changes every node above
    # it); only a node with no bad record under it, or under a smaller bad node, says something new.
    bad = sorted({i for i, _ in body_problems})
    for start, end, message in bad_nodes:
        if not any(start <= i < end for i in bad):
            report.bad_record(start, message)
            bad.append(start)

    report.size = expected
    report.root = frontier.root()
    if report.first_bad_index is None and max_checkpoint_size > expected:
        report.bad_record(expected, f"log ends at {expected} records but a signed checkpoint covers "
                          f"{max_checkpoint_size}: records were removed from the tail")
        for size, entries in claimed.items():
            if size > expected:
                for cid, _ in entries:
                    report.bad_checkpoint(cid, f"covers {size} records, the log holds {expected}")
    if progress:
        progress(expected, total)
    return report


class LeafMismatch(VerificationError):
    """A stored record whose bytes do not hash to its stored leaf."""


@dataclass(frozen=True)
class Inclusion:
    proof: InclusionProof  # checked: against the tree and the record's leaf
    latest: SignedCheckpoint | None  # the log's latest signed checkpoint
    covered: bool  # ``latest`` covers the record and the proof is at its size (else at the current tree's)


def check_inclusion(log: ProvenanceLog, stored) -> Inclusion:
    """A stored record's leaf checked against its bytes and its inclusion proof against the tree: at the latest
    signed checkpoint's size when that covers the record, else at the current size. Whether the checkpoint's
    signature and root hold is the caller's to judge (it has the keys and words the report). ``LeafMismatch``
    when the bytes do not hash to the leaf; a ``GuardError`` when the proof does not hold."""
    if merkle.leaf_hash(stored.body) != stored.leaf_hash:
        raise LeafMismatch(f"record {stored.index}: stored bytes do not hash to its leaf")
    latest = log.latest_checkpoint()
    covered = latest is not None and latest.checkpoint.size > stored.index
    proof = log.inclusion_proof(stored.index, latest.checkpoint.size if covered else None)
    proof.verify()
    if proof.leaf_hash != stored.leaf_hash:
        raise VerificationError("the proof is for a different leaf")
    return Inclusion(proof, latest, covered)
