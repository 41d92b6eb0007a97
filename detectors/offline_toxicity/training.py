"""Fit a combiner on labelled texts, with a held-out split to report on and a threshold for a target FPR.

Labelled data is a CSV with ``text`` and ``label`` columns (1 = toxic, 0 = not), or JSON Lines with the same
keys. Each file is split on its own, stratified by label, with a fixed seed, so a rerun holds out the same rows
(the evidence's held-out splits are made by ``split`` too).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from detectors.offline_toxicity import combiner as combiners

MAX_TEXT_CHARS = 100_000  # longer cells are cut: bounded memory on hostile input


@dataclass(frozen=True)
class Labelled:
    source: str
    sha256: str
    texts: list[str]
    labels: np.ndarray  # int, 0 or 1

    def subset(self, rows: np.ndarray) -> "Labelled":
        return Labelled(self.source, self.sha256, [self.texts[i] for i in rows], self.labels[rows])


def read_labelled(path: Path) -> Labelled:
    """Texts and 0/1 labels from a CSV (``text,label``) or JSON Lines file; errors name the file and row."""
    try:
        raw = Path(path).read_bytes()
        content = raw.decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    rows = _jsonl(content, path) if Path(path).suffix.lower() in (".jsonl", ".ndjson") else _csv(content, path)
    texts, labels = [], []
    for n, (text, label) in enumerate(rows, start=2 if Path(path).suffix.lower() == ".csv" else 1):
        value = str(label).strip()
        if value not in ("0", "1", "0.0", "1.0", "true", "false", "True", "False"):
            raise InputError(f"{path}: row {n}: label must be 0 or 1, got {label!r}")
        texts.append(str(text)[:MAX_TEXT_CHARS])
        labels.append(1 if value in ("1", "1.0", "true", "True") else 0)
    if not texts:
        raise InputError(f"{path}: no labelled rows")
    return Labelled(str(path), hashlib.sha256(raw).hexdigest(), texts, np.asarray(labels, dtype=np.int64))


def _csv(content: str, path: Path) -> list[tuple[Any, Any]]:
    reader = csv.DictReader(content.splitlines())
    if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
        raise InputError(f"{path}: a CSV needs 'text' and 'label' columns (found {reader.fieldnames})")
    try:
        return [(row["text"], row["label"]) for row in reader]
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from exc


def _jsonl(content: str, path: Path) -> list[tuple[Any, Any]]:
    rows = []
    for n, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {n}: not JSON: {exc.msg}") from exc
        if not isinstance(item, dict) or "text" not in item or "label" not in item:
            raise InputError(f"{path}: line {n}: expected an object with 'text' and 'label'")
        rows.append((item["text"], item["label"]))
    return rows


def split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices, stratified by label; ``holdout`` 0 holds nothing out."""
    if holdout <= 0:
        return np.arange(len(labels)), np.arange(0)
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    try:
        train, test = train_test_split(rows, test_size=holdout, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise InputError(f"cannot hold out {holdout:g} of {len(labels)} rows by label: {exc}") from exc
    return np.sort(train), np.sort(test)


@dataclass(frozen=True)
class Evaluation:
    rows: int
    positives: int
    auc: float
    ap: float
    fpr_at_threshold: dict[str, float]  # target FPR -> FPR the stored threshold gives on these rows
    tpr_at_threshold: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "positives": self.positives, "auc": round(self.auc, 4), "ap": round(self.ap, 4),
                "fpr_at_threshold": {k: round(v, 4) for k, v in self.fpr_at_threshold.items()},
                "tpr_at_threshold": {k: round(v, 4) for k, v in self.tpr_at_threshold.items()}}


def evaluate(scores: np.ndarray, labels: np.ndarray, thresholds: dict[str, float]) -> Evaluation:
    from sklearn.metrics import average_precision_score, roc_auc_score

    neg, pos = scores[labels == 0], scores[labels == 1]
    both = len(neg) and len(pos)
    return Evaluation(
        rows=len(labels), positives=int(labels.sum()),
        auc=float(roc_auc_score(labels, scores)) if both else float("nan"),
        ap=float(average_precision_score(labels, scores)) if both else float("nan"),
        fpr_at_threshold={k: float(np.mean(neg >= t)) if len(neg) else float("nan") for k, t in thresholds.items()},
        tpr_at_threshold={k: float(np.mean(pos >= t)) if len(pos) else float("nan") for k, t in thresholds.items()},
    )


@dataclass(frozen=True)
class TrainReport:
    combiner: combiners.Combiner
    train_rows: int
    holdout: Evaluation | None
    per_file: dict[str, Evaluation] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.combiner.kind, "train_rows": self.train_rows,
                "thresholds": self.combiner.thresholds,
                "holdout": self.holdout.to_dict() if self.holdout else None,
                "holdout_per_file": {k: v.to_dict() for k, v in self.per_file.items()},
                "trained_on": list(self.combiner.trained_on)}


def train(scorer: Any, data: list[Labelled], *, kind: combiners.Kind, holdout: float, seed: int,
          target_fpr: float, progress: Any = None) -> TrainReport:
    """Fit ``kind`` on the training rows of every file; report on the held-out rows."""
    parts = [(d, *split(d.labels, holdout, seed)) for d in data]
    train_set = [d.subset(tr) for d, tr, _ in parts]
    held = [d.subset(te) for d, _, te in parts if len(te)]
    texts = [t for d in train_set for t in d.texts]
    feats = _features(scorer, texts, progress)
    labels = np.concatenate([d.labels for d in train_set])
    fprs = tuple(sorted({0.01, 0.05, target_fpr}))
    trained_on = tuple({"file": Path(d.source).name, "sha256": d.sha256, "rows": len(d.texts),
                        "train_rows": len(t.texts), "holdout": holdout, "seed": seed}
                       for d, t in zip(data, train_set))
    fitted = combiners.fit(feats, labels, kind=kind, target_fprs=fprs, trained_on=trained_on)
    if not held:
        return TrainReport(fitted, len(texts), None)
    per_file = {}
    all_scores, all_labels = [], []
    for d in held:
        scores = fitted(_features(scorer, d.texts, progress))
        per_file[Path(d.source).name] = evaluate(scores, d.labels, fitted.thresholds)
        all_scores.append(scores)
        all_labels.append(d.labels)
    overall = evaluate(np.concatenate(all_scores), np.concatenate(all_labels), fitted.thresholds)
    return TrainReport(fitted, len(texts), overall, per_file)


def _features(scorer: Any, texts: list[str], progress: Any, chunk: int = 2048) -> dict[str, np.ndarray]:
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(scorer.features(texts[start:start + chunk]))
        if progress is not None:
            progress(len(texts[start:start + chunk]))  # texts just scored
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
