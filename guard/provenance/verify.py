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
from guard.provenance.log import ProvenanceLog


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
    """Problems with the stored records in [start, stop): bytes that do not hash to the stored leaf hash, and
    records whose own index or id disagrees with where they are stored. Runs in a worker process."""
    import orjson  # parses every record; the standard library's parser was 40% of a full verification

    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(url)
    problems: list[tuple[int, str]] = []
    with log.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT idx, record_id, body, leaf_hash FROM guard_records WHERE idx >= {int(start)} "
            f"AND idx < {int(stop)} ORDER BY idx"
        )
        for idx, record_id, body, stored_leaf in rows:
            body = bytes(body)
            if merkle.leaf_hash(body) != bytes(stored_leaf):
                problems.append((idx, "stored leaf hash does not match the record bytes"))
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                problems.append((idx, "stored record is not valid JSON"))
                continue
            if not isinstance(data, dict) or data.get("index") != idx:
                said = data.get("index") if isinstance(data, dict) else None
                problems.append((idx, f"record says index {said}, stored at {idx}"))
            elif data.get("record_id") != record_id:
                problems.append((idx, "record id column does not match the record"))
            if len(problems) >= 50:
                break
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
                    if pending_node is None or (int(pending_node.level), int(pending_node.idx)) != (level, node_idx):
                        report.bad_record(node_idx << level, f"Merkle node ({level}, {node_idx}) is missing")
                        continue
                    start, end = node_idx << level, (node_idx + 1) << level
                    # A smaller bad node already found under this one explains it; report only new damage.
                    explained = report.first_bad_index is not None and start <= report.first_bad_index < end
                    if bytes(pending_node.hash) != h and not explained:
                        report.bad_record(start, f"Merkle node ({level}, {node_idx}) over records [{start}, {end}) "
                                          "does not match")
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
