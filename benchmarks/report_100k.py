"""``guard audit`` over a log of 10^5 records: reading, verifying and rendering the HTML report, against the
usual data-frame way (pandas ``json_normalize`` of every record, then group-bys for the same tables), each in a
fresh process so its time and peak memory are its own.

    python benchmarks/report_100k.py                   # 10^5 records in a fresh temporary SQLite log
    python benchmarks/report_100k.py --records 20000
    python benchmarks/report_100k.py --db /tmp/r.db    # keep (or reuse) the log

Records: ``benchmarks/_audit_records.py`` (60 % text, 40 % images, ~1 KB each, appended in batches of 1,000).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(db: Path, n: int) -> float:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from benchmarks._audit_records import synth_record
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(db)
    key = ed25519.Ed25519PrivateKey.generate()
    rng = random.Random(3)
    t = time.perf_counter()
    for start in range(0, n, 1000):
        log.append_batch([synth_record(i, n, rng) for i in range(start, min(n, start + 1000))])
    log.checkpoint(key)
    db.with_suffix(".pub").write_bytes(_pem(key.public_key()))
    return time.perf_counter() - t


def _pem(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def phase_ours(db: Path, out: Path) -> dict:
    from cryptography.hazmat.primitives import serialization

    from guard.audit import gather, render
    from guard.audit.data import check_integrity
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(db)
    key = serialization.load_pem_public_key(db.with_suffix(".pub").read_bytes())
    t = time.perf_counter()  # the libraries the report loads lazily, timed apart from the work
    import guard.bias.logged  # noqa: F401
    import matplotlib.figure  # noqa: F401
    imports_s = time.perf_counter() - t
    t = time.perf_counter()  # the two steps of gather(log, public_key=key), timed apart
    data = gather(log, verify=False)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    data.integrity = check_integrity(log, key, None)
    verify_s = time.perf_counter() - t
    t = time.perf_counter()
    page = render(data, "html")
    render_s = time.perf_counter() - t
    out.write_text(page)
    return {"records": data.records, "imports_s": imports_s, "read_s": read_s, "verify_s": verify_s,
            "verified": data.integrity.verified, "render_s": render_s, "html_kb": len(page) // 1024}


def phase_pandas(db: Path) -> dict:
    """The same tables with pandas: every record normalised into a frame, then group-bys."""
    import pandas as pd
    from sqlalchemy import create_engine

    t = time.perf_counter()
    engine = create_engine(f"sqlite:///{db}")
    bodies = pd.read_sql("SELECT body FROM guard_records ORDER BY idx", engine)["body"]
    frame = pd.json_normalize([json.loads(b) for b in bodies])
    frame["category"] = frame["media_type"].str.split("/").str[0]
    frame["hour"] = frame["created_at"].str[:13]
    tables = {
        "volume": frame.groupby(["hour", "verdict"]).size(),
        "verdicts": frame.groupby(["category", "verdict"]).size(),
        "actions": frame.explode("actions").groupby(["category", "actions"]).size(),
        "models": frame.groupby(["generator.model_id", "generator.revision"]).size(),
        "policies": frame.groupby(["policy.name", "policy.sha256"]).size(),
    }
    scores = pd.json_normalize(frame.explode("scores")["scores"].dropna().tolist())
    tables["scores"] = scores.groupby(["detector", "label", "stage"])["value"].describe()
    delivered = frame[frame["verdict"] != "block"]
    tables["marking"] = delivered.groupby("category")[["watermark.scheme", "signature.type"]].count()
    return {"records": len(frame), "seconds": time.perf_counter() - t, "tables": len(tables)}


def _run_phase(name: str, db: Path, out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--phase", name, "--db", str(db), "--out", str(out)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--out", type=Path, help="where the HTML report goes")
    parser.add_argument("--phase", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.phase:
        t = time.perf_counter()
        result = phase_ours(args.db, args.out) if args.phase == "ours" else phase_pandas(args.db)
        result["wall_s"] = time.perf_counter() - t
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    db = args.db or Path(tempfile.mkdtemp()) / "report-bench.db"
    out = args.out or db.with_suffix(".html")
    results: dict = {"records": args.records}
    if not db.exists():
        results["build_s"] = build(db, args.records)
        print(f"build: {args.records:,} records in {results['build_s']:.0f} s")
    ours = _run_phase("ours", db, out)
    peer = _run_phase("pandas", db, out)
    results.update(ours=ours, pandas=peer)
    print(f"ours:   imports {ours['imports_s']:.1f} s, read {ours['read_s']:.1f} s, verify {ours['verify_s']:.1f} s, "
          f"charts + HTML {ours['render_s']:.1f} s; "
          f"whole process {ours['wall_s']:.1f} s, peak RSS {ours['max_rss_mb']:.0f} MB; report {ours['html_kb']} KB "
          f"at {out}")
    print(f"pandas: json_normalize + group-bys (no verification, no charts) {peer['seconds']:.1f} s after imports, "
          f"peak RSS {peer['max_rss_mb']:.0f} MB")
    print(f"ratio pandas / ours (reading into the report's tables): {peer['seconds'] / ours['read_s']:.1f}x time, "
          f"{peer['max_rss_mb'] / ours['max_rss_mb']:.1f}x peak memory")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
