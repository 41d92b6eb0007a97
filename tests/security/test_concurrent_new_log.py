"""Race: several processes open the same new SQLite log at the same moment (workers of one service starting
together). Every one of them must get the log; none may fail with "database is locked"."""

from __future__ import annotations

import multiprocessing


def _open(path: str, barrier) -> str:
    from guard.provenance.log import ProvenanceLog

    barrier.wait()
    try:
        log = ProvenanceLog(path)
        log_id = log.log_id
        log.close()
        return log_id
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        return f"failed: {exc}"


def test_four_processes_open_a_new_log_at_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        for trial in range(3):
            path = str(tmp_path / f"new-{trial}.db")
            barrier = manager.Barrier(4)
            with ctx.Pool(4) as pool:
                ids = pool.starmap(_open, [(path, barrier)] * 4)
            assert len(set(ids)) == 1 and not ids[0].startswith("failed"), ids
