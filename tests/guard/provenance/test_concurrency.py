"""Many writers and crashes: distinct gap-free indices, one consistent tree, nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from guard.provenance.log import ProvenanceLog
from guard.provenance.verify import verify_log
from tests.fixtures.shared import REPO
from tests.guard.provenance.helpers import make_record


def _writer(url: str, batches: int, size: int, tag: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.guard.provenance.writer", url, str(batches), str(size), tag],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)


def test_processes_and_threads_append_without_gaps(log_url, keys):
    procs = [_writer(log_url, batches=15, size=4, tag=f"p{k}") for k in range(4)]
    log = ProvenanceLog(log_url)
    acked_in_threads: list[str] = []
    lock = threading.Lock()

    def thread_writer(k: int) -> None:
        for b in range(10):
            entries = log.append_batch([make_record(b, prompt=f"t{k}-{b}") for _ in range(3)])
            with lock:
                acked_in_threads.extend(e.record_id for e in entries)

    threads = [threading.Thread(target=thread_writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = list(acked_in_threads)
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        acked += [line.split()[0] for line in out.splitlines()]

    total = 4 * 15 * 4 + 3 * 10 * 3
    assert len(acked) == total
    assert log.size() == total
    indices = sorted(r.index for r in log.iter_records())
    assert indices == list(range(total))
    assert {r.record_id for r in log.iter_records()} == set(acked)
    log.checkpoint(keys.log_private_key())
    assert verify_log(log, keys.log_public_key()).ok


def test_sigkill_mid_append_loses_nothing_acknowledged(log_url, keys):
    proc = _writer(log_url, batches=100_000, size=3, tag="crash")
    acked = []
    for line in proc.stdout:
        acked.append(line.split()[0])
        if len(acked) >= 60:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    log = ProvenanceLog(log_url)
    stored = {r.record_id for r in log.iter_records()}
    assert set(acked) <= stored
    assert sorted(r.index for r in log.iter_records()) == list(range(log.size()))
    log.append(make_record(0))  # the log takes new writes after the crash
    report = verify_log(log, keys.log_public_key())
    assert report.ok, report.problems
