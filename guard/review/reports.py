"""Whole-log reports for the compliance and bias pages, computed in the background and kept until asked again.

A compliance checklist reads every record in its period and verifies the whole log (minutes on 10^6 records), so
no page request waits for one: the first request starts the job in a worker thread and the page shows its
progress; later requests show the finished result with the time it was computed and the log size it covers, and
a reviewer recomputes it with a button. One job runs at a time per report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guard.audit.export import Filters
from guard.provenance.log import ProvenanceLog

REPORTS = ("eu-ai-act-art50", "nist-ai-100-4", "bias")


@dataclass
class Job:
    name: str
    filters: Filters
    state: str = "running"  # running | done | failed
    started: float = field(default_factory=time.time)
    finished: float | None = None
    done: int = 0
    total: int = 0
    log_size: int = 0
    result: dict[str, Any] | None = None
    charts: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None


class Reports:
    """The latest job per (report, period); thread-safe."""

    def __init__(self, log: ProvenanceLog, keys, *, self_test: bool = True) -> None:
        self.log, self.keys, self.self_test = log, keys, self_test
        self._jobs: dict[tuple[str, Filters], Job] = {}
        self._lock = threading.Lock()

    def get(self, name: str, filters: Filters, *, restart: bool = False) -> Job:
        """The job for ``name`` over ``filters``; started now when there is none (or ``restart`` and it is done)."""
        key = (name, filters)
        with self._lock:
            job = self._jobs.get(key)
            if job is None or (restart and job.state != "running"):
                job = Job(name, filters, log_size=self.log.size())
                self._jobs[key] = job
                if len(self._jobs) > 32:  # bounded: forget the oldest finished periods
                    for old in [k for k, j in self._jobs.items() if j.state != "running"][:-16]:
                        self._jobs.pop(old, None)
                threading.Thread(target=self._run, args=(job,), daemon=True, name=f"report-{name}").start()
            return job

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.result, job.charts = self._compute(job.name, job.filters, progress)
            job.state = "done"
        except Exception as exc:  # shown on the page; the server keeps serving
            job.error, job.state = f"{type(exc).__name__}: {exc}", "failed"
        job.finished = time.time()

    def _compute(self, name: str, filters: Filters,
                 progress: Callable[[int, int], None]) -> tuple[dict[str, Any], dict[str, str | None]]:
        from guard.audit import charts
        from guard.audit.data import gather

        if name == "bias":
            data = gather(self.log, filters, verify=False, progress=progress)
            return {"records": data.records, "bias": data.bias}, {"bias": charts.bias(data)}
        from guard.audit.compliance import checklist_from, log_public_key

        data = gather(self.log, filters, public_key=log_public_key(self.keys), progress=progress)
        result = checklist_from(data, self.log, name, keys=self.keys, self_test=self.self_test)
        return result.to_dict(), {"volume": charts.volume(data), "verdicts": charts.verdicts(data),
                                  "marking": charts.marking(data), "scores": charts.scores(data)}
