"""The ``copyright`` detector: does an output nearly reproduce a registered protected work?

The registry (``WorksStore``) is one SQLite file of *fingerprints*: it never holds the works themselves, so it
can be shared with whoever runs the guard without handing out the protected text or images.

Text is checked two ways, because each catches what the other misses:

- ``verbatim``: the longest run of words copied in order. Every 8-word sequence of a work is hashed into an
  indexed table; the output's 8-word sequences are looked up, hits are grouped by their offset in the work, and
  the longest run of consecutive hits gives the copied length. Score ``min(1, words / needed)`` where
  ``needed`` is ``verbatim_words`` (default 40), or the work's length when the work is shorter (all of a short
  poem is a full copy).
- ``near_duplicate``: a copy with light edits (a changed word every line, new punctuation) breaks long verbatim
  runs but keeps most character 5-grams. Works are cut into windows of 128 words (stride 64) and each window's
  MinHash goes into a datasketch ``MinHashLSH``. The output is cut into windows of 64 words (stride 32): any
  64 copied words lie wholly inside some work window, so the score is the estimated *containment* of an output
  window in a work window, ``|A ∩ B| / |A|``, derived from the MinHash Jaccard estimate J and the two shingle
  counts as ``J (|A| + |B|) / ((1 + J) |A|)``. Containment, unlike Jaccard, does not fall when the copy is
  shorter than or misaligned with the work's windows. Output windows under 32 words are too small for that
  estimate to be reliable and are not scored here: short reproductions are the verbatim check's job.

- ``paraphrase`` (only with a ``semantic_model``): a rewording keeps the meaning but few of the words, so neither
  check above sees it. Works are cut into windows of 48 words (stride 24) and each window is embedded with a
  sentence encoder (all-MiniLM-L6-v2 from ``guard models install minilm``, or any sentence-transformers folder)
  when the work is registered; the vectors are stored with the encoder's id (a few hundred floats per window,
  not the text). Output windows of the same size are embedded in one batch per call and the score is the
  highest cosine similarity between an output window and a work window, clipped to [0, 1]. Outputs under
  ``MIN_SEMANTIC_WORDS`` words are not scored (short generic sentences resemble everything a little).

Images: the 64-bit perceptual hash (DCT pHash) of the output against each registered image; the score is
``1 - distance / 64`` for the closest work (re-encoding and resizing usually keep the distance under 8, i.e. a
score above 0.875; unrelated images sit near 0.5).

Every score names the closest work (id, name, SHA-256) in ``details``, so a block says what was copied.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.errors import InputError
from core.hashing import pixels_sha256
from detectors import fingerprints as fp
from detectors.base import Detector, Score

DB_NAME = "works.db"
GRAM_WORDS = 8
WORK_WINDOW = (128, 64)  # words, stride
OUTPUT_WINDOW = (64, 32)
MIN_OUTPUT_WINDOW = 32
LSH_THRESHOLD = 0.25  # a perfect 64-word copy inside a 128-word window has Jaccard about 0.5
SEMANTIC_WINDOW = (48, 24)  # words, stride: about a paragraph, well inside MiniLM's 256-token limit
MIN_SEMANTIC_WORDS = 12
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS works (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('text', 'image')),
    sha256 TEXT NOT NULL UNIQUE, source TEXT, words INTEGER, phash INTEGER, added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grams (hash INTEGER NOT NULL, work INTEGER NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY (hash, work, pos)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS windows (work INTEGER NOT NULL, start INTEGER NOT NULL, shingles INTEGER NOT NULL,
    sig BLOB NOT NULL, PRIMARY KEY (work, start)) WITHOUT ROWID;
"""
_EMBEDDINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (work INTEGER NOT NULL, encoder TEXT NOT NULL, start INTEGER NOT NULL,
    vec BLOB NOT NULL, PRIMARY KEY (work, encoder, start)) WITHOUT ROWID;
"""


def _gram_hash(tokens: list[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(tokens).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def gram_hashes(tokens: list[str], n: int = GRAM_WORDS) -> list[int]:
    """Hashes of every ``n``-word sequence, in order (one hash of all words when there are fewer)."""
    if len(tokens) < n:
        return [_gram_hash(tokens)] if tokens else []
    return [_gram_hash(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def windows(tokens: list[str], size: int, stride: int) -> list[tuple[int, str]]:
    """(start, text) of overlapping word windows; the last one ends at the last word."""
    if len(tokens) <= size:
        return [(0, " ".join(tokens))] if tokens else []
    starts = list(range(0, len(tokens) - size + 1, stride))
    if starts[-1] != len(tokens) - size:
        starts.append(len(tokens) - size)
    return [(s, " ".join(tokens[s:s + size])) for s in starts]


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class Work:
    id: int
    name: str
    kind: str  # text | image
    sha256: str
    source: str | None
    words: int | None
    added_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "sha256": self.sha256, "source": self.source,
                "words": self.words, "added_at": self.added_at}


def resolve_store(path: str | os.PathLike) -> Path:
    """The registry file: ``path`` itself when it names a file, else ``path/works.db``."""
    p = Path(os.path.expandvars(str(path))).expanduser()
    return p / DB_NAME if p.is_dir() or not p.suffix else p


def existing_store(path: str | os.PathLike) -> Path:
    """The registry file, which must exist."""
    store = resolve_store(path)
    if not store.is_file():
        # The registry is the user's data, not a model's files: its absence stays a plain FileNotFoundError, as
        # logged detector errors and audit reports have always named it.
        raise FileNotFoundError(f"{store}: no works registry (register works with `guard works add`)")
    return store


class WorksStore:
    """The registry of protected works' fingerprints (one SQLite file)."""

    def __init__(self, path: str | os.PathLike, *, create: bool = False) -> None:
        self.path = resolve_store(path) if create else existing_store(path)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        if create:
            self._conn.executescript(_SCHEMA + _EMBEDDINGS_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def generation(self) -> int:
        """Bumped on every change, so a loaded detector notices new works without a restart."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def _bump(self) -> None:
        self._conn.execute("INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) "
                           "DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def find(self, sha256: str) -> Work | None:
        row = self._conn.execute("SELECT id, name, kind, sha256, source, words, added_at FROM works "
                                 "WHERE sha256 = ?", (sha256,)).fetchone()
        return Work(*row) if row else None

    def add_text(self, name: str, text: str, *, source: str | None = None, encoder=None) -> tuple[Work, bool]:
        """Register a text; returns the work and whether it was new (the same text twice is one work). With a
        ``SentenceEncoder`` its windows are embedded too (also for a work registered before without them)."""
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        existing = self.find(sha)
        if existing:
            if encoder is not None:
                self._embed(existing.id, text, encoder)
            return existing, False
        tokens = fp.words(text)
        if not tokens:
            raise InputError(f"{source or name}: the text has no words to fingerprint")
        with self._conn:
            work_id = self._insert_work(name, "text", sha, source, len(tokens), None)
            grams = {(h, pos) for pos, h in enumerate(gram_hashes(tokens))}
            self._conn.executemany("INSERT OR IGNORE INTO grams (hash, work, pos) VALUES (?, ?, ?)",
                                   [(h, work_id, pos) for h, pos in grams])
            self._conn.executemany(
                "INSERT INTO windows (work, start, shingles, sig) VALUES (?, ?, ?, ?)",
                [(work_id, start, len(fp.shingles(chunk)), fp.minhash(chunk).hashvalues.astype("<u4").tobytes())
                 for start, chunk in windows(tokens, *WORK_WINDOW)])
            self._bump()
        if encoder is not None:
            self._embed(work_id, text, encoder)
        return self.find(sha), True

    def _embed(self, work_id: int, text: str, encoder) -> None:
        """Store the work's window embeddings for ``encoder`` unless they are there already."""
        self._conn.executescript(_EMBEDDINGS_SCHEMA)  # registries made before paraphrase matching lack it
        if self._conn.execute("SELECT 1 FROM embeddings WHERE work = ? AND encoder = ? LIMIT 1",
                              (work_id, encoder.model_id)).fetchone():
            return
        chunks = windows(fp.words(text), *SEMANTIC_WINDOW)
        vectors = encoder.encode([chunk for _, chunk in chunks])
        with self._conn:
            self._conn.executemany("INSERT INTO embeddings (work, encoder, start, vec) VALUES (?, ?, ?, ?)",
                                   [(work_id, encoder.model_id, start, vec.astype("<f4").tobytes())
                                    for (start, _), vec in zip(chunks, vectors)])
            self._bump()

    def add_image(self, name: str, image, *, source: str | None = None) -> tuple[Work, bool]:
        rgb = image.convert("RGB")
        sha = pixels_sha256(rgb)  # as provenance records name images
        existing = self.find(sha)
        if existing:
            return existing, False
        with self._conn:
            self._insert_work(name, "image", sha, source, None, _signed(fp.phash_int(rgb)))
            self._bump()
        return self.find(sha), True

    def _insert_work(self, name, kind, sha, source, words, phash) -> int:
        added = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        cur = self._conn.execute("INSERT INTO works (name, kind, sha256, source, words, phash, added_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, kind, sha, source, words, phash, added))
        return int(cur.lastrowid)

    def remove(self, work_id: int) -> bool:
        if not 0 < work_id < 2**63:  # beyond SQLite's integers: no such work
            return False
        with self._conn:
            deleted = self._conn.execute("DELETE FROM works WHERE id = ?", (work_id,)).rowcount
            self._conn.execute("DELETE FROM grams WHERE work = ?", (work_id,))
            self._conn.execute("DELETE FROM windows WHERE work = ?", (work_id,))
            if self._has_embeddings():
                self._conn.execute("DELETE FROM embeddings WHERE work = ?", (work_id,))
            if deleted:
                self._bump()
        return bool(deleted)

    def works(self) -> list[Work]:
        rows = self._conn.execute("SELECT id, name, kind, sha256, source, words, added_at FROM works ORDER BY id")
        return [Work(*row) for row in rows]

    def digest(self) -> str:
        """A short hash of what is registered: the detector's model id, so a logged score is reproducible."""
        shas = sorted(w.sha256 for w in self.works())
        return hashlib.sha256("\n".join([fp.TEXT_SCHEME, *shas]).encode()).hexdigest()[:16]

    # -- lookups the detector uses --------------------------------------------------------------------------

    def gram_hits(self, hashes: list[int]) -> list[tuple[int, int, int]]:
        """(hash, work, pos) for every registered 8-word sequence among ``hashes``."""
        out: list[tuple[int, int, int]] = []
        unique = list(set(hashes))
        for i in range(0, len(unique), 900):
            chunk = unique[i:i + 900]
            out += self._conn.execute(f"SELECT hash, work, pos FROM grams WHERE hash IN ({','.join('?' * len(chunk))})",
                                      chunk).fetchall()
        return out

    def window_signatures(self) -> list[tuple[int, int, int, np.ndarray]]:
        """(work, first word, shingle count, MinHash values) of every work window."""
        return [(work, start, shingles, np.frombuffer(sig, dtype="<u4").astype(np.uint64))
                for work, start, shingles, sig in self._conn.execute("SELECT work, start, shingles, sig FROM windows")]

    def _has_embeddings(self) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embeddings'"
                                  ).fetchone() is not None

    def window_embeddings(self, encoder_id: str) -> tuple[list[tuple[int, int]], np.ndarray]:
        """(work, first word) of every work window embedded with ``encoder_id``, and the vectors as rows."""
        if not self._has_embeddings():
            return [], np.zeros((0, 0), dtype=np.float32)
        rows = self._conn.execute("SELECT work, start, vec FROM embeddings WHERE encoder = ? ORDER BY work, start",
                                  (encoder_id,)).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [(w, s) for w, s, _ in rows], np.stack([np.frombuffer(v, dtype="<f4") for _, _, v in rows])

    def image_hashes(self) -> list[tuple[int, int]]:
        rows = self._conn.execute("SELECT id, phash FROM works WHERE kind = 'image'")
        return [(work, phash + (1 << 64) if phash < 0 else phash) for work, phash in rows]


class _Loaded:
    """What the detector holds in memory for one registry generation: the LSH of windows, the image hashes and,
    with an encoder, the work windows' embeddings."""

    def __init__(self, store: WorksStore, encoder=None) -> None:
        from datasketch import MinHashLSH

        self.generation = store.generation()
        self.works = {w.id: w for w in store.works()}
        self.model_id = f"copyright/works-registry@{store.digest()} ({len(self.works)} works)"
        self.lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=fp.NUM_PERM)
        self.signatures: dict[str, tuple[int, int, int, Any]] = {}
        for work, start, shingles, values in store.window_signatures():
            m = _lean(values)
            key = f"{work}:{start}"
            self.lsh.insert(key, m)
            self.signatures[key] = (work, start, shingles, m)
        images = store.image_hashes()
        self.image_ids = [w for w, _ in images]
        self.image_hashes = np.array([h for _, h in images], dtype=np.uint64)
        self.embedded: list[tuple[int, int]] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        if encoder is not None:
            self.embedded, self.vectors = store.window_embeddings(encoder.model_id)
            missing = sorted({w.id for w in self.works.values() if w.kind == "text"} - {w for w, _ in self.embedded})
            if missing:
                names = ", ".join(f"#{i} {self.works[i].name}" for i in missing[:5])
                raise InputError(f"{store.path}: works {names} have no embeddings from {encoder.model_id}; register "
                                 f"them again with the same semantic model (guard works add --semantic-model …)")
            self.model_id += f"; paraphrase: {encoder.model_id}"


def _lean(values: np.ndarray):
    from datasketch import LeanMinHash

    return LeanMinHash(seed=fp.SEED, hashvalues=values, scheme="affine32")


class CopyrightDetector(Detector):
    """Scores outputs against a registry of protected works (``works:`` option: its folder or file)."""

    name: ClassVar[str] = "copyright"
    modalities = frozenset({"text", "image"})
    emits = frozenset({"verbatim", "near_duplicate"})

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        super().validate_options(options)
        existing_store(options["works"])

    def __init__(self, works: str, verbatim_words: int = 40, semantic_model: str | None = None,
                 semantic_batch_size: int = 32) -> None:
        if verbatim_words < GRAM_WORDS:
            raise InputError(f"verbatim_words must be at least {GRAM_WORDS}, got {verbatim_words}")
        self.store = WorksStore(works)
        self.verbatim_words = verbatim_words
        self.encoder = None
        if semantic_model is not None:
            from detectors.sentence_encoder import SentenceEncoder

            self.encoder = SentenceEncoder(semantic_model, batch_size=semantic_batch_size)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def _current(self) -> _Loaded:
        with self._lock:
            if self._loaded is None or self._loaded.generation != self.store.generation():
                self._loaded = _Loaded(self.store, self.encoder)
            return self._loaded

    @property
    def model_id(self) -> str:
        return self._current().model_id

    def score(self, items: list[Any]) -> list[list[Score]]:
        loaded = self._current()
        out = [self._score_text(loaded, item) if isinstance(item, str) else self._score_image(loaded, item)
               for item in items]
        if self.encoder is not None:
            texts = [(i, item) for i, item in enumerate(items) if isinstance(item, str)]
            for (i, _), score in zip(texts, self._paraphrase(loaded, [t for _, t in texts])):
                out[i].append(score)
        return out

    def _paraphrase(self, loaded: _Loaded, texts: list[str]) -> list[Score]:
        """The best cosine similarity of each text's windows to any work window; all windows of all texts are
        embedded in one batched call."""
        chunks = [(t, start, chunk) for t, text in enumerate(texts)
                  if len(tokens := fp.words(text)) >= MIN_SEMANTIC_WORDS
                  for start, chunk in windows(tokens, *SEMANTIC_WINDOW)]
        best: list[tuple[float, int, int]] = [(0.0, -1, 0)] * len(texts)  # cosine, work row, output start
        if chunks and len(loaded.embedded):
            sims = self.encoder.encode([c for _, _, c in chunks]) @ loaded.vectors.T
            rows, cos = sims.argmax(axis=1), sims.max(axis=1)
            for (t, start, _), row, value in zip(chunks, rows.tolist(), cos.tolist()):
                if value > best[t][0]:
                    best[t] = (value, row, start)
        scores = []
        for value, row, start in best:
            details = {}
            if row >= 0:
                work, work_start = loaded.embedded[row]
                details = {**self._work(loaded, work), "cosine": round(value, 4), "output_word": start,
                           "work_word": work_start}
            scores.append(Score(self.name, "paraphrase", min(1.0, max(0.0, value)), loaded.model_id, details))
        return scores

    def _work(self, loaded: _Loaded, work_id: int) -> dict[str, Any]:
        w = loaded.works[work_id]
        return {"work_id": w.id, "work": w.name, "work_sha256": w.sha256}

    def _score_text(self, loaded: _Loaded, text: str) -> list[Score]:
        tokens = fp.words(text)
        return [self._verbatim(loaded, tokens), self._near_duplicate(loaded, tokens)]

    def _verbatim(self, loaded: _Loaded, tokens: list[str]) -> Score:
        hashes = gram_hashes(tokens)
        positions: dict[int, list[int]] = {}
        for i, h in enumerate(hashes):
            positions.setdefault(h, []).append(i)
        diagonals: dict[tuple[int, int], set[int]] = {}
        for h, work, pos in self.store.gram_hits(hashes):
            for i in positions[h]:
                diagonals.setdefault((work, pos - i), set()).add(i)
        best = (0.0, 0, None, 0, 0)  # score, words, work, output start, work start
        for (work, offset), starts in diagonals.items():
            # Copying all of a work shorter than ``verbatim_words`` (a short poem) is a full reproduction too.
            needed = min(self.verbatim_words, loaded.works[work].words or self.verbatim_words)
            ordered = sorted(starts)
            run_start = prev = ordered[0]
            for i in [*ordered[1:], None]:  # None closes the last run
                if i is not None and i == prev + 1:
                    prev = i
                    continue
                length = min(len(tokens), prev - run_start + GRAM_WORDS)  # grams run_start..prev cover these words
                ratio = min(1.0, length / needed)
                if (ratio, length) > best[:2]:
                    best = (ratio, length, work, run_start, run_start + offset)
                if i is not None:
                    run_start = prev = i
        score, words, work, out_start, work_start = best
        details = {}
        if work is not None:
            details = {**self._work(loaded, work), "words": words, "output_word": out_start, "work_word": work_start}
        return Score(self.name, "verbatim", score, loaded.model_id, details)

    def _near_duplicate(self, loaded: _Loaded, tokens: list[str]) -> Score:
        best = (0.0, 0.0, None, 0, 0)  # containment, jaccard, work, output start, work start
        if len(tokens) >= MIN_OUTPUT_WINDOW:
            for start, chunk in windows(tokens, *OUTPUT_WINDOW):
                m, size = fp.minhash(chunk), len(fp.shingles(chunk))
                for key in loaded.lsh.query(m):
                    work, work_start, other_size, other = loaded.signatures[key]
                    jaccard = float(m.jaccard(other))
                    contained = min(1.0, jaccard * (size + other_size) / ((1.0 + jaccard) * size))
                    if contained > best[0]:
                        best = (contained, jaccard, work, start, work_start)
        contained, jaccard, work, out_start, work_start = best
        details = {}
        if work is not None:
            details = {**self._work(loaded, work), "containment": round(contained, 4), "jaccard": round(jaccard, 4),
                       "output_word": out_start, "work_word": work_start}
        return Score(self.name, "near_duplicate", contained, loaded.model_id, details)

    def _score_image(self, loaded: _Loaded, image) -> list[Score]:
        if not len(loaded.image_hashes):
            return [Score(self.name, "near_duplicate", 0.0, loaded.model_id)]
        distances = fp.hamming_many(fp.phash_int(image), loaded.image_hashes.tolist())
        k = int(np.argmin(distances))
        distance = int(distances[k])
        details = {**self._work(loaded, loaded.image_ids[k]), "hamming_distance": distance}
        return [Score(self.name, "near_duplicate", 1.0 - distance / fp.PHASH_BITS, loaded.model_id, details)]
