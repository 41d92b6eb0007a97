"""False-positive rate of the ``copyright`` detector on unrelated text, and its hit rate on reproductions.

    python benchmarks/copyright_fpr.py [--unrelated 5000]

Offline corpora, all from this machine's disk:

- **registered works**: every licence text in ``/usr/share/common-licenses`` (GPL 1-3, LGPL, GFDL, MPL, Apache,
  Artistic, BSD, CC0; symbolic links skipped: 14 files, 37,381 words on Debian 12), standing in for protected works;
- **unrelated text**: docstrings of at least 30 words from installed packages (numpy, scipy, pandas, sklearn,
  matplotlib, sqlalchemy, PIL, the standard library), cut to at most 300 words;
- **reproductions**: 60-word excerpts of the works, verbatim, inside other text, and lightly edited (one word
  in ten replaced, punctuation and case changed).

Thresholds are those of the test policy: ``verbatim`` >= 1.0 (40 copied words in a row) or ``near_duplicate``
>= 0.8. An "unrelated" docstring that really quotes a licence is reported as a true match, not a false alarm.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import inspect
import pkgutil
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.copyright import CopyrightDetector, WorksStore  # noqa: E402

LICENSES = Path("/usr/share/common-licenses")
PACKAGES = ("numpy", "scipy", "pandas", "sklearn", "matplotlib", "sqlalchemy", "PIL", "json", "email", "logging",
            "argparse", "collections", "unittest", "http", "xml", "asyncio", "concurrent", "importlib")
THRESHOLDS = {"verbatim": 1.0, "near_duplicate": 0.8}


def unrelated_corpus(limit: int) -> list[str]:
    seen, out = set(), []
    for name in PACKAGES:
        try:
            root = importlib.import_module(name)
        except ImportError:
            continue
        modules = [root]
        for info in pkgutil.walk_packages(getattr(root, "__path__", []), prefix=name + ".", onerror=lambda _: None):
            if any(part in info.name for part in ("test", "._", "conftest", "__main__")):
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # a few modules print on import
                    modules.append(importlib.import_module(info.name))
            except Exception:  # optional sub-modules whose dependencies are missing
                continue
        for module in modules:
            for _, obj in inspect.getmembers(module):
                doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj)) else None
                words = (doc or "").split()
                if len(words) < 30:
                    continue
                text = " ".join(words[:300])
                if text not in seen:
                    seen.add(text)
                    out.append(text)
    random.Random(0).shuffle(out)
    return out[:limit]


def reproductions(works: list[str], rng: random.Random, n: int) -> dict[str, list[str]]:
    fillers = ["quickly", "new", "data", "system", "their", "because", "many", "often"]
    out = {"verbatim excerpt": [], "excerpt inside other text": [], "lightly edited excerpt": []}
    for _ in range(n):
        words = rng.choice(works).split()
        start = rng.randrange(0, max(1, len(words) - 60))
        excerpt = words[start:start + 60]
        out["verbatim excerpt"].append(" ".join(excerpt))
        out["excerpt inside other text"].append("As the document says: " + " ".join(excerpt) + " End of quote.")
        edited = [rng.choice(fillers) if k % 10 == 5 else w for k, w in enumerate(excerpt)]
        out["lightly edited excerpt"].append(" ".join(edited).upper().replace(".", ";"))
    return out


def flagged(scores) -> bool:
    return any(s.value >= THRESHOLDS[s.label] for s in scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unrelated", type=int, default=5000)
    parser.add_argument("--positives", type=int, default=200)
    args = parser.parse_args()
    files = sorted(p for p in LICENSES.iterdir() if p.is_file() and not p.is_symlink())
    works = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    with tempfile.TemporaryDirectory() as tmp:
        store = WorksStore(tmp, create=True)
        t = time.perf_counter()
        for path, text in zip(files, works):
            store.add_text(path.name, text, source=str(path))
        print(f"registered {len(files)} works ({sum(len(w.split()) for w in works):,} words) in "
              f"{time.perf_counter() - t:.1f} s")
        detector = CopyrightDetector(tmp)
        corpus = unrelated_corpus(args.unrelated)
        print(f"unrelated corpus: {len(corpus):,} docstrings from {', '.join(PACKAGES)}")
        t = time.perf_counter()
        results = detector.score(corpus)
        elapsed = time.perf_counter() - t
        alarms = [(text, scores) for text, scores in zip(corpus, results) if flagged(scores)]
        maxima = {label: sorted(s.value for scores in results for s in scores if s.label == label)
                  for label in THRESHOLDS}
        print(f"scored in {elapsed:.1f} s ({elapsed / len(corpus) * 1e3:.1f} ms per text)")
        for label, values in maxima.items():
            print(f"  {label}: p50 {statistics.median(values):.3f}, p99 {values[int(0.99 * len(values))]:.3f}, "
                  f"max {values[-1]:.3f} (threshold {THRESHOLDS[label]})")
        for text, scores in alarms:
            best = max(scores, key=lambda s: s.value)
            print(f"  flagged ({best.label} {best.value:.2f}, {best.details.get('work')}): {text[:140]}…")
        from scipy.stats import beta

        upper = float(beta.ppf(0.95, len(alarms) + 1, len(corpus) - len(alarms)))  # one-sided Clopper-Pearson
        print(f"flagged {len(alarms)}/{len(corpus)} unrelated texts: false-positive rate {len(alarms) / len(corpus):.3%}"
              f" (95% upper bound {upper:.3%}); each flagged text is listed above: check whether it quotes a licence")
        rng = random.Random(1)
        for kind, texts in reproductions(works, rng, args.positives).items():
            scored = detector.score(texts)
            hits = sum(flagged(scores) for scores in scored)
            near = sorted(s.value for scores in scored for s in scores if s.label == "near_duplicate")
            print(f"reproductions, {kind}: {hits}/{len(texts)} flagged ({hits / len(texts):.1%}); near_duplicate "
                  f"p10 {near[len(near) // 10]:.2f}, median {statistics.median(near):.2f}")


if __name__ == "__main__":
    main()
