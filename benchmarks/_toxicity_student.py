"""A small student for the offline toxicity scorer: distilled from the teachers, with counterfactual augmentation.

What issue 18 asks to try before fine-tuning a sentence encoder: one small model trained on the training rows'
labels *and* the teachers' scores (the rank-mean of the Jigsaw BiLSTM and the SVM), so it learns what both the
human raters and the Jigsaw-trained models call toxic, on features neither teacher has:

- **features**: hashed character 2-5-grams (within word boundaries) and word 1-2-grams, binary, L2-normalised
  (scikit-learn ``HashingVectorizer``; no vocabulary to store, misspellings and "f*ck" share n-grams with the
  word, which the teachers' word vocabularies miss);
- **target**: ``alpha * label + (1 - alpha) * teacher`` (soft), fitted as a logistic regression with each row
  twice, as positive with weight ``t`` and as negative with weight ``1 - t`` (cross-entropy on a soft target),
  classes balanced;
- **counterfactual augmentation**: every training text that names a group (the identity term list of
  ``detectors.offline_toxicity.identity``) is added again with each group word swapped for another group's word
  on the same axis (``woman`` -> ``man``, ``Muslim`` -> ``Hindu``), same target: the student learns that which
  group is named does not change the score;
- **unlabelled distillation** (optional): texts without labels, target = the teacher alone.

The student scores the text as given (the augmentation, not neutralisation, is its identity-term mitigation).
This is a benchmark module: ``toxicity_offline_eval.py`` fits it per training set and measures it on held-out
and cross-domain rows beside the teachers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

N_FEATURES = 2**19  # per analyser: 2 x 512k weights, 4 MB as float32


def vectorizer() -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.pipeline import FeatureUnion

    common = {"n_features": N_FEATURES, "alternate_sign": False, "binary": True, "norm": "l2", "lowercase": True}
    return FeatureUnion([
        ("char", HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common)),
        ("word", HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common)),
    ])


@lru_cache(maxsize=1)
def _axes() -> tuple[dict[str, str], dict[str, list[str]]]:
    """word (lower case) -> axis, and axis -> its words, from the term list neutralisation uses (minus KEEP)."""
    from detectors.bias.terms import load_terms
    from detectors.offline_toxicity.identity import KEEP

    axis_of: dict[str, str] = {}
    words: dict[str, list[str]] = {}
    for g in load_terms().groups:
        for w in (*g.terms, *g.adjectives):
            if w.lower() in KEEP or w.lower() in axis_of:
                continue
            axis_of[w.lower()] = g.axis
            words.setdefault(g.axis, []).append(w)
    return axis_of, words


def counterfactual(texts: list[str], rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """One copy of each text that names a group, every group word swapped for another on its axis; and the rows
    of ``texts`` the copies came from."""
    from detectors.offline_toxicity.identity import _pattern

    axis_of, words = _axes()
    pattern = _pattern()

    def swap(m: re.Match[str]) -> str:
        options = [w for w in words[axis_of.get(m.group(0).lower(), "")] if w.lower() != m.group(0).lower()] \
            if m.group(0).lower() in axis_of else []
        return str(rng.choice(options)) if options else m.group(0)

    out, rows = [], []
    for i, text in enumerate(texts):
        swapped = pattern.sub(swap, text)
        if swapped != text:
            out.append(swapped)
            rows.append(i)
    return out, np.asarray(rows, dtype=np.int64)


@dataclass(frozen=True)
class Student:
    vectorizer: Any
    model: Any  # sklearn LogisticRegression

    def __call__(self, texts: list[str]) -> np.ndarray:
        """The student's logit per text (higher is more toxic)."""
        return self.model.decision_function(self.vectorizer.transform(texts))


def fit(texts: list[str], labels: np.ndarray | None, teacher: np.ndarray, *, alpha: float = 0.5,
        augment: bool = True, unlabelled: tuple[list[str], np.ndarray] | None = None, c: float = 4.0,
        seed: int = 0) -> Student:
    """Fit on ``texts`` (labels 0/1 and teacher probabilities in [0, 1]); ``unlabelled`` adds (texts, teacher)
    rows whose target is the teacher alone."""
    from scipy.sparse import vstack
    from sklearn.linear_model import LogisticRegression

    target = teacher if labels is None else alpha * labels + (1 - alpha) * teacher
    texts, target = list(texts), np.asarray(target, dtype=np.float64)
    if unlabelled is not None:
        texts += list(unlabelled[0])
        target = np.concatenate([target, np.asarray(unlabelled[1], dtype=np.float64)])
    if augment:
        extra, rows = counterfactual(texts, np.random.default_rng(seed))
        texts += extra
        target = np.concatenate([target, target[rows]])
    vec = vectorizer()
    x = vec.transform(texts)
    # balanced: the soft positives and negatives weigh the same in total
    w_pos, w_neg = target, 1 - target
    w_pos, w_neg = w_pos * (len(target) / 2 / w_pos.sum()), w_neg * (len(target) / 2 / w_neg.sum())
    model = LogisticRegression(C=c, max_iter=2000, solver="liblinear")
    model.fit(vstack([x, x]).tocsr(), np.r_[np.ones(len(target)), np.zeros(len(target))],
              sample_weight=np.r_[w_pos, w_neg])
    return Student(vec, model)
