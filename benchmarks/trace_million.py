"""``guard trace`` over a log of 10^6 records: build time, index time, query latency and recall, against two
peers measured in the same run: a linear scan of every stored fingerprint (numpy), and datasketch's in-memory
``MinHashLSH`` (the usual way to do MinHash LSH in Python).

    python benchmarks/trace_million.py                      # 10^6 records in a fresh temporary SQLite log
    python benchmarks/trace_million.py --records 100000     # smaller
    python benchmarks/trace_million.py --db /tmp/big.db     # keep (or reuse) the log

The log is built through ``ProvenanceLog.append_batch`` in batches of 1,000 (``benchmarks/_audit_records.py``:
60 % text, 40 % images, ~1 KB each). 32 records are real (16 bundled photographs, 16 standard-library
docstrings); each query is one of them after an edit (images: downscaled to 70 % and re-encoded as JPEG q75;
texts: a few words changed), or an unrelated input that must not match.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._audit_records import real_image_record, real_text_record, synth_record  # noqa: E402
from core.imageio import jpeg_roundtrip  # noqa: E402
from detectors import fingerprints as fp  # noqa: E402
from guard.provenance.log import ProvenanceLog  # noqa: E402
from guard.audit.trace import TraceIndex, index_records, trace_image, trace_text  # noqa: E402

IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "immunohistochemistry",
          "retina", "moon", "page", "text", "horse", "cat", "brick", "grass", "gravel")
MODULES = ("json", "argparse", "csv", "statistics", "unittest", "heapq", "ftplib", "smtplib", "difflib", "sqlite3",
           "collections")  # their module docstrings hold over 2,000 words: 16 distinct 120-word texts


def _images():
    from PIL import Image
    from skimage import data

    out = []
    for name in IMAGES:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image.thumbnail((512, 512))
        out.append(image)
    return out


def _texts() -> list[str]:
    words = " ".join(inspect.getdoc(__import__(name)) or "" for name in MODULES).split()
    return [" ".join(words[k * 120:(k + 1) * 120]) for k in range(16)]


def _edit_text(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(max(2, len(words) // 30)):
        words[rng.randrange(len(words))] = rng.choice(["quickly", "the", "new", "data", "system"])
    return " ".join(words)


def _edit_image(image):
    from PIL import Image

    small = image.resize((int(image.width * 0.7), int(image.height * 0.7)), Image.Resampling.LANCZOS)
    return jpeg_roundtrip(small, 75)


def build(log: ProvenanceLog, n: int, batch: int = 1000) -> tuple[float, dict[int, int], dict[int, int]]:
    """Append n records; returns (seconds, {image target: index}, {text target: index})."""
    rng = random.Random(7)
    images, texts = _images(), _texts()
    slots = {n * (k + 1) // (len(images) + len(texts) + 1): k for k in range(len(images) + len(texts))}
    image_at, text_at = {}, {}
    t = time.perf_counter()
    for start in range(0, n, batch):
        records = []
        for i in range(start, min(n, start + batch)):
            k = slots.get(i)
            if k is None:
                records.append(synth_record(i, n, rng))
            elif k < len(images):
                records.append(real_image_record(images[k], synth_record(i, n, rng).created_at))
                image_at[k] = i
            else:
                records.append(real_text_record(texts[k - len(images)], synth_record(i, n, rng).created_at))
                text_at[k - len(images)] = i
        log.append_batch(records)
        if start % 100_000 == 0:
            print(f"  appended {start + len(records):,} records ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    return time.perf_counter() - t, image_at, text_at


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:.1f} ms, max {max(values) * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="log file to build (or reuse when it holds --records)")
    parser.add_argument("--peer-lsh", type=int, default=100_000,
                        help="text signatures put into datasketch's in-memory MinHashLSH (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "trace-bench.db"
    results: dict = {"records": args.records, "db": str(db)}
    rng = random.Random(11)

    log = ProvenanceLog(db)
    meta = db.with_suffix(".targets.json")
    if log.size() == 0:
        seconds, image_at, text_at = build(log, args.records)
        meta.write_text(json.dumps({"images": image_at, "texts": text_at}))
        results["build_s"] = seconds
        print(f"build: {args.records:,} records in {seconds:.0f} s ({args.records / seconds:,.0f} records/s)")
    else:
        saved = json.loads(meta.read_text())
        image_at = {int(k): v for k, v in saved["images"].items()}
        text_at = {int(k): v for k, v in saved["texts"].items()}
        print(f"reusing {db} ({log.size():,} records)")

    t = time.perf_counter()
    added = index_records(log, progress=lambda done, total: print(f"  indexed {done:,}/{total:,}", file=sys.stderr)
                          if done % 200_000 == 0 else None)
    index_s = time.perf_counter() - t
    if added:
        results["index_s"] = index_s
        print(f"index: {added:,} records in {index_s:.0f} s ({added / index_s:,.0f} records/s)")
    from cryptography.hazmat.primitives.asymmetric import ed25519

    log.checkpoint(ed25519.Ed25519PrivateKey.generate())
    results["db_mb"] = round(sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6)

    images, texts = _images(), _texts()
    timings = {"image": [], "text": [], "image_unrelated": [], "text_unrelated": []}
    found = {"image": 0, "text": 0}
    false_matches = 0
    for k, image in enumerate(images):
        query = _edit_image(image)
        t = time.perf_counter()
        report = trace_image(query, log)
        timings["image"].append(time.perf_counter() - t)
        found["image"] += any(m.index == image_at[k] for m in report.matches)
    for k, text in enumerate(texts):
        query = _edit_text(text, rng)
        t = time.perf_counter()
        report = trace_text(query, log)
        timings["text"].append(time.perf_counter() - t)
        found["text"] += any(m.index == text_at[k] for m in report.matches)
    from PIL import Image

    for k in range(16):  # unrelated inputs: noise images and shuffled word lists
        noise = Image.frombytes("RGB", (256, 256), rng.randbytes(256 * 256 * 3))
        t = time.perf_counter()
        false_matches += len(trace_image(noise, log, max_distance=6).matches)
        timings["image_unrelated"].append(time.perf_counter() - t)
        words = " ".join(texts).split()
        rng.shuffle(words)
        t = time.perf_counter()
        false_matches += len(trace_text(" ".join(words[:120]), log).matches)
        timings["text_unrelated"].append(time.perf_counter() - t)
    results["ours"] = {k: {"median_ms": statistics.median(v) * 1e3, "max_ms": max(v) * 1e3}
                       for k, v in timings.items()}
    results["recall"] = {"image": f"{found['image']}/{len(images)}", "text": f"{found['text']}/{len(texts)}"}
    results["false_matches"] = false_matches
    print(f"ours  image (after 70% + JPEG q75): {_ms(timings['image'])}; found {results['recall']['image']}")
    print(f"ours  text (a few words changed):   {_ms(timings['text'])}; found {results['recall']['text']}")
    print(f"ours  unrelated inputs: image {_ms(timings['image_unrelated'])}, text {_ms(timings['text_unrelated'])}; "
          f"{false_matches} matches")

    # Peer 1: linear scan of every stored fingerprint (what the index replaces), loaded from the same database.
    from sqlalchemy import select

    index = TraceIndex(log)
    with log.engine.connect() as conn:
        t = time.perf_counter()
        import numpy as np

        phashes = np.array([v + (1 << 64) if v < 0 else v for v in
                            conn.execute(select(index.t["guard_trace_phash"].c.phash)).scalars()], dtype=np.uint64)
        load_img = time.perf_counter() - t
        t = time.perf_counter()
        sigs = np.frombuffer(b"".join(conn.execute(select(index.t["guard_trace_text"].c.sig)).scalars()),
                             dtype=np.uint8).reshape(-1, fp.NUM_PERM)
        load_txt = time.perf_counter() - t
    scan_img, scan_txt = [], []
    for image in images:
        q = np.uint64(fp.phash_int(_edit_image(image)))
        t = time.perf_counter()
        np.flatnonzero(np.bitwise_count(phashes ^ q) <= 10)
        scan_img.append(time.perf_counter() - t)
    for text in texts:
        q = np.frombuffer(fp.bbit_signature(_edit_text(text, rng)), dtype=np.uint8)
        t = time.perf_counter()
        np.flatnonzero((sigs == q).mean(axis=1) >= 0.5)
        scan_txt.append(time.perf_counter() - t)
    results["linear_scan"] = {"load_images_s": load_img, "load_texts_s": load_txt,
                              "image_scan_ms": statistics.median(scan_img) * 1e3,
                              "text_scan_ms": statistics.median(scan_txt) * 1e3}
    cold_img = load_img + statistics.median(scan_img)
    cold_txt = load_txt + statistics.median(scan_txt)
    print(f"peer  linear scan: load {len(phashes):,} pHashes {load_img:.2f} s + scan "
          f"{statistics.median(scan_img) * 1e3:.1f} ms; load {len(sigs):,} signatures {load_txt:.2f} s + scan "
          f"{statistics.median(scan_txt) * 1e3:.1f} ms")
    print(f"ratio (linear scan from storage / ours): image {cold_img / statistics.median(timings['image']):.0f}x, "
          f"text {cold_txt / statistics.median(timings['text']):.0f}x")

    # Peer 2: datasketch MinHashLSH, in memory, over a subset of the stored signatures.
    if args.peer_lsh:
        import pickle

        from datasketch import LeanMinHash, MinHashLSH

        subset = sigs[: args.peer_lsh].astype(np.uint64)
        gc.collect()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        lsh = MinHashLSH(threshold=0.7, num_perm=fp.NUM_PERM)
        with lsh.insertion_session() as session:
            for i, row in enumerate(subset):
                session.insert(i, LeanMinHash(seed=fp.SEED, hashvalues=row, scheme="affine32"), check_duplication=False)
        lsh_build = time.perf_counter() - t
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        t = time.perf_counter()
        blob = pickle.dumps(lsh)
        pickle.loads(blob)
        lsh_load = time.perf_counter() - t
        q_times = []
        for text in texts:
            q = LeanMinHash(seed=fp.SEED, hashvalues=np.frombuffer(fp.bbit_signature(_edit_text(text, rng)),
                                                                   dtype=np.uint8).astype(np.uint64), scheme="affine32")
            t = time.perf_counter()
            lsh.query(q)
            q_times.append(time.perf_counter() - t)
        scale = len(sigs) / len(subset)
        results["datasketch_lsh"] = {"signatures": len(subset), "build_s": lsh_build, "rss_growth_mb": rss,
                                     "pickle_mb": len(blob) / 1e6, "unpickle_s": lsh_load,
                                     "query_ms": statistics.median(q_times) * 1e3}
        print(f"peer  datasketch MinHashLSH over {len(subset):,} signatures: build {lsh_build:.1f} s, +{rss:.0f} MB "
              f"RSS, pickle {len(blob) / 1e6:.0f} MB (reload {lsh_load:.1f} s), query "
              f"{statistics.median(q_times) * 1e3:.2f} ms")
        print(f"       scaled to all {len(sigs):,} text records: build ~{lsh_build * scale:.0f} s and "
              f"~{rss * scale:.0f} MB "
              f"in every process that answers queries; ratio (reload / ours) "
              f"{lsh_load * scale / statistics.median(timings['text']):.0f}x")

    # A fresh process, as a reviewer runs it: imports, opening the log, the query and the proofs.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "query.jpg"
        _edit_image(images[0]).save(path, "JPEG", quality=90)
        tpath = Path(tmp) / "query.txt"
        tpath.write_text(_edit_text(texts[0], rng))
        cli = []
        for p in (path, tpath):
            t = time.perf_counter()
            command = [str(Path(sys.executable).parent / "guard"), "trace", str(p), "--log", str(db), "--json",
                       "--keys", str(Path(tmp) / "no-keys")]
            out = subprocess.run(command, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            cli.append(time.perf_counter() - t)
            assert out.returncode in (0, 1), out.stderr
        results["cli_cold_s"] = {"image": cli[0], "text": cli[1]}
        print(f"cold `guard trace` process (imports included): image {cli[0]:.2f} s, text {cli[1]:.2f} s")
    print(f"database: {results['db_mb']} MB (log + trace index) at {db}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
