"""Loading Hugging Face-style models for detectors: where the files are, what they hash to, and one error type
for "the weights are not here" so the guard can apply the policy's ``fail`` / ``fallback`` setting.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


class ModelUnavailableError(RuntimeError):
    """The model's weights are neither local nor cached and cannot be fetched (offline, or no such model).

    Distinct from a model that loads but fails while scoring: a policy may name a ``fallback`` scorer for this
    case only.
    """


def offline() -> bool:
    """True when the user asked Hugging Face libraries not to touch the network."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(folder: Path) -> str | None:
    """SHA-256 over the weights files a loader would read: all ``*.safetensors`` if there are any, else the
    ``*.bin`` / ``*.pt`` files, streamed in name order. For a single weights file it equals ``sha256sum``."""
    files = sorted(folder.glob("*.safetensors")) or sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def snapshot_folder(name: str, commit: str | None) -> Path | None:
    """The local folder that holds ``name``: the path itself, or its hub-cache snapshot for ``commit``."""
    if Path(name).is_dir():
        return Path(name)
    if not commit:
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=commit, local_files_only=True))
    except Exception:  # noqa: BLE001 - a cache layout we cannot read only costs the hash, not the model
        return None
