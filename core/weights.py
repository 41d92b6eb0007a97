"""Which files make a model, where they are, and the one ``weights_sha256`` a record pins a model by.

Detectors and generators both record the model that produced a score or an output by this hash, so the same
weights give the same hash whichever component loaded them, and an auditor can recompute it from the files.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import InputError, ModelUnavailableError
from core.hashing import sha256_file

# Suffixes of files that hold weights (PyTorch, safetensors, ONNX, Flax, GGUF). In one folder, safetensors files
# are what every loader reads when they are there, so the others beside them are left out (see ``weights_files``).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".msgpack", ".gguf")
_HEX = frozenset("0123456789abcdef")


def weights_files(folder: str | Path) -> list[Path]:
    """The weights files of a model folder, sorted by their path relative to ``folder`` (POSIX form).

    Every folder below ``folder`` (itself included; hidden ones such as ``.git`` or ``.cache`` left out) gives
    its ``*.safetensors`` files if it has any, else its files with another suffix in ``WEIGHT_SUFFIXES``. So a
    transformers folder gives ``model.safetensors`` (not a ``pytorch_model.bin`` beside it, nor a training
    checkpoint's ``optimizer.pt``), and a diffusers pipeline gives the weights of each component folder.
    """
    folder = Path(folder)
    by_dir: dict[Path, list[Path]] = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.suffix in WEIGHT_SUFFIXES and not any(part.startswith(".") for part in relative.parts) and path.is_file():
            by_dir.setdefault(relative.parent, []).append(path)
    chosen: list[Path] = []
    for paths in by_dir.values():
        safetensors = [p for p in paths if p.suffix == ".safetensors"]
        chosen += safetensors or paths
    return sorted(chosen, key=lambda p: p.relative_to(folder).as_posix())


def weights_sha256(path: str | Path) -> str | None:
    """The weights hash of a model file or folder (``None`` for a folder without weights files).

    Exactly what is hashed, so an auditor can recompute it:

    - a file: its SHA-256 (``sha256sum FILE``);
    - a folder with one weights file (see ``weights_files`` for which files count): that file's SHA-256, which is
      also the SHA-256 the Hugging Face hub shows for it;
    - a folder with several: the SHA-256 of a manifest, one line per weights file in ``weights_files`` order,
      ``<path relative to the folder, with "/" separators>`` TAB ``<the file's SHA-256>`` LF, encoded as UTF-8
      (docs/provenance.md shows how to recompute it with a shell).

    In a Hugging Face cache snapshot a weights file is a link to a blob named by its SHA-256 (git LFS), and that
    name is used instead of reading the file, so hashing a multi-GB hub model reads nothing.
    """
    path = Path(path)
    if path.is_file():
        return _file_sha256(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model file or folder")
    files = weights_files(path)
    if not files:
        return None
    if len(files) == 1:
        return _file_sha256(files[0])
    manifest = "".join(f"{p.relative_to(path).as_posix()}\t{_file_sha256(p)}\n" for p in files)
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    if path.is_symlink():
        blob = path.resolve().name
        if len(blob) == 64 and set(blob) <= _HEX:
            return blob
    return sha256_file(path)


def snapshot_folder(name: str | Path, commit: str | None) -> Path | None:
    """The local folder that holds model ``name``: the path itself, or its Hugging Face cache snapshot for
    ``commit`` (``None`` when neither is there: the model then goes unhashed, it still loads)."""
    if Path(name).is_dir():
        return Path(name)
    if not commit:
        return None
    from huggingface_hub import snapshot_download

    try:
        with hub_access(True):
            return Path(snapshot_download(str(name), revision=commit, local_files_only=True))
    except Exception:  # noqa: BLE001 - a cache layout we cannot read only costs the hash, not the model
        return None


ALLOW_DOWNLOADS = "GUARD_ALLOW_DOWNLOADS"
DOWNLOADS_OFF = (f"downloads are off unless asked for: set {ALLOW_DOWNLOADS}=1, or give the component "
                 "local_files_only: false (a detector's policy options), to fetch it")


def offline_hint(name: str | Path, folder_holds: str = "config.json and its weights") -> str:
    """Why hub model ``name`` did not load when downloads are off, and the two ways out: what a user reads
    instead of the hub library's own message (which never says the toolkit is offline)."""
    return (f"{str(name)!r} is not on this machine and the toolkit is offline (it downloads nothing unless asked): "
            f"point the model option (--model on the command line) at a local folder ({folder_holds}), or set {ALLOW_DOWNLOADS}=1 (or "
            "local_files_only: false in the detector's options) to fetch it")


def _set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def offline(local_files_only: bool | None = None) -> bool:
    """Whether a model must be loaded from local files only: the toolkit opens no network connection unless the
    user asked for one. Never a download when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set; otherwise as the
    component's ``local_files_only`` option says when it is given, else downloads only with GUARD_ALLOW_DOWNLOADS."""
    if _set("HF_HUB_OFFLINE") or _set("TRANSFORMERS_OFFLINE"):
        return True
    if local_files_only is not None:
        return local_files_only
    return not _set(ALLOW_DOWNLOADS)


_HUB_LOCK = threading.RLock()


@contextmanager
def hub_access(local_files_only: bool) -> Iterator[None]:
    """Load through the Hugging Face libraries with no network use at all when ``local_files_only``.

    Their ``local_files_only`` argument alone is not enough: huggingface_hub 2.x asks the hub for metadata while
    it builds request headers, even for a file it then reads from the cache. Its offline switch stops every
    request, so it is held on for the load and restored after; loads take one lock, so a load that may download
    never runs while another holds the switch on.
    """
    with _HUB_LOCK:
        if not local_files_only:
            yield
            return
        from huggingface_hub import constants

        before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before


def torch_load(path: str | Path, what: str) -> object:
    """A PyTorch file's contents read with ``weights_only`` (no code in the file runs); ``what`` names the expected
    file in the errors: ``ModelUnavailableError`` when it is missing, ``InputError`` when it is not a torch file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle and zip errors alike mean "not a torch weights file"
        raise InputError(f"{path}: not a PyTorch file ({type(exc).__name__}: {exc})") from None
