"""Records for log tests: small, distinct, and carrying an erasable prompt."""

from __future__ import annotations

from guard.provenance.record import ProvenanceRecord


def make_record(i: int, *, prompt: str | None = None) -> ProvenanceRecord:
    return ProvenanceRecord(
        media_type="text/plain; charset=utf-8",
        generator={"name": "callable", "model_id": "tests.echo", "revision": None, "weights_sha256": None},
        verdict="allow" if i % 7 else "flag",
        policy={"name": "test", "sha256": "0" * 64},
        artifact={"sha256": f"{i:064x}", "hash_of": "utf-8", "size": i},
        params={"seed": i},
        prompt={"storage": "plain"},
        private={"prompt": prompt if prompt is not None else f"prompt number {i}"},
    )


def fill(log, n: int, batch: int = 100) -> None:
    for start in range(0, n, batch):
        log.append_batch([make_record(i) for i in range(start, min(n, start + batch))])
