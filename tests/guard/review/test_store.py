"""The review index answers every filter and page exactly as reading every record would, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from core.errors import InputError
from guard.provenance.record import ProvenanceRecord
from guard.review.decisions import record_decision
from guard.review.store import ALL_LABELS, ListQuery, ReviewStore

START = datetime(2025, 5, 1, tzinfo=timezone.utc)
MODELS = ["m-small", "m-large", None]


def _records(n: int, seed: int = 7) -> list[ProvenanceRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        image = rng.random() < 0.4
        verdict = rng.choice(["allow"] * 6 + ["flag", "redact", "block"])
        scores = [{"detector": "toxicity", "label": label, "value": round(rng.random(), 4), "stage": stage}
                  for label in ("toxicity", "insult") for stage in ("prompt", "output")]
        if image:
            scores.append({"detector": "copyright", "label": "near_duplicate", "value": round(rng.random(), 4),
                           "stage": "output"})
        moment = START + timedelta(minutes=7 * i + rng.randrange(3))
        # two records share a timestamp now and then: the keyset must still page through both
        created = (START + timedelta(minutes=7 * (i - 1))) if i % 50 == 49 else moment
        out.append(ProvenanceRecord(
            media_type="image/png" if image else "text/plain; charset=utf-8",
            generator={"name": "g", "model_id": rng.choice(MODELS)}, verdict=verdict,
            policy={"name": "p", "sha256": "0" * 64}, scores=scores,
            created_at=created.isoformat(timespec="microseconds").replace("+00:00", "Z")))
    return out


def _fill(log):
    log.append_batch(_records(240))
    store = ReviewStore(log)
    assert store.catch_up(chunk=64).indexed == 240
    return store, [log.get(i).data for i in range(log.size())]


@pytest.fixture
def filled(log):
    """A log of 240 records this test may change."""
    return _fill(log)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared(request, tmp_path_factory):
    """The same, built once per backend for the tests that only read."""
    from sqlalchemy import text

    from guard.provenance.log import ProvenanceLog
    from tests.conftest import _postgres_database

    if request.param == "sqlite":
        log = ProvenanceLog(tmp_path_factory.mktemp("store") / "log.db")
        yield _fill(log)
        log.close()
        return
    admin, name, url = _postgres_database()
    log = ProvenanceLog(url)
    yield _fill(log)
    log.close()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _expected(records, q: ListQuery) -> list[int]:
    def best(r, detector, label):
        values = [s["value"] for s in r["scores"] if s["detector"] == detector and label in (ALL_LABELS, s["label"])]
        return max(values) if values else None

    kinds = {"text": "text/plain; charset=utf-8", "image": "image/png"}
    keep = []
    for r in records:
        if q.since and r["created_at"] < q.since or q.until and r["created_at"] >= q.until:
            continue
        if q.verdict and r["verdict"] != q.verdict or q.kind and r["media_type"] != kinds[q.kind]:
            continue
        if q.model and r["generator"]["model_id"] != q.model:
            continue
        if q.incident and r["verdict"] not in ("flag", "redact", "block"):
            continue
        if q.detector:
            value = best(r, q.detector, q.label or ALL_LABELS)
            if value is None or (q.score_min is not None and value < q.score_min) or \
                    (q.score_max is not None and value > q.score_max):
                continue
        keep.append(r)
    keep.sort(key=lambda r: (r["created_at"], r["index"]), reverse=True)
    return [r["index"] for r in keep]


QUERIES = [
    ListQuery(),
    ListQuery(verdict="block"),
    ListQuery(kind="image"),
    ListQuery(model="m-large"),
    ListQuery(incident=True),
    ListQuery(detector="toxicity", score_min=0.7),
    ListQuery(detector="toxicity", label="insult", score_min=0.2, score_max=0.4),
    ListQuery(detector="copyright"),
    ListQuery(since="2025-05-01T05:00:00.000000Z", until="2025-05-01T20:00:00.000000Z", kind="text"),
    ListQuery(verdict="flag", kind="text", model="m-small", detector="toxicity", score_min=0.3),
]


@pytest.mark.parametrize("budget", [20_000, 30], ids=["budget-large", "budget-30"])
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(f"{k}={v}" for k, v in vars(q).items()
                                                                  if v not in (None, False, 50)) or "all")
def test_pages_match_a_full_scan_in_both_directions(shared, query, budget):
    """With a small scan budget pages may come back partial, but paging still visits every match once, in order."""
    store, records = shared
    store.scan_budget = budget
    from dataclasses import replace

    want = _expected(records, query)
    got, q = [], replace(query, limit=25)
    pages = []
    while True:
        page = store.page(q)
        pages.append(page)
        got += [row.index for row in page.rows]
        if page.older is None:
            break
        q = replace(query, limit=25, before=page.older)
    assert got == want
    if budget == 20_000 and len(pages) > 1:  # walking back with "newer" from the last page gives the pages again, in order
        back = store.page(replace(query, limit=25, after=pages[-1].newer))
        assert [r.index for r in back.rows] == [r.index for r in pages[-2].rows]


def test_a_rare_match_gives_a_partial_page_that_says_how_far_it_searched(shared):
    store, records = shared
    store.scan_budget = 30
    page = store.page(ListQuery(detector="toxicity", score_min=0.97))
    newest = sorted(records, key=lambda r: (r["created_at"], r["index"]), reverse=True)
    assert page.scanned_to == newest[29]["created_at"]  # the 30th newest record with a toxicity score
    assert page.older == (newest[29]["created_at"], newest[29]["index"])
    assert len(page.rows) < 25 and all(max(s["value"] for s in r.record["scores"] if s["detector"] == "toxicity")
                                       >= 0.97 for r in page.rows)


def test_incident_status_follows_the_latest_decision(filled, log):
    store, records = filled
    incident = next(r["index"] for r in records if r["verdict"] == "block")
    assert store.status_of(incident) == "pending"
    record_decision(log, incident, "escalate", "needs legal", reviewer="ana", role="reviewer")
    record_decision(log, incident, "overturn", "a quote, not an insult", reviewer="bo", role="admin")
    store.catch_up()
    assert store.status_of(incident) == "overturn"
    page = store.page(ListQuery(incident=True, status="overturn"))
    assert [r.index for r in page.rows] == [incident]
    decisions = store.page(ListQuery(kind="review"))
    assert len(decisions.rows) == 2 and store.children(records[incident]["record_id"])[-1]["extra"]["review"][
        "decision"] == "overturn"
    assert store.lag() == 0


def test_rebuild_reads_the_whole_log_again(filled, log):
    store, _ = filled
    store.rebuild()
    assert store.page(ListQuery()).rows == []
    assert store.catch_up().indexed == log.size()
    assert len(store.page(ListQuery(limit=25)).rows) == 25


def test_facets_list_what_the_log_holds(shared):
    store, _ = shared
    facets = store.facets()
    assert set(facets["model"]) == {"m-small", "m-large"}
    assert set(facets["detector"]) == {"toxicity", "copyright"}
    assert "toxicity/insult" in facets["label"] and set(facets["kind"]) == {"text", "image"}


@pytest.mark.parametrize("bad, message", [
    (ListQuery(limit=7), "page size"), (ListQuery(kind="video"), "media type"),
    (ListQuery(score_min=1.5, detector="x"), "between 0 and 1"), (ListQuery(score_min=0.5), "needs a detector"),
    (ListQuery(status="maybe"), "review status"),
])
def test_bad_queries_are_input_errors(bad, message):
    with pytest.raises(InputError, match=message):
        bad.validate()
