"""``guard demo``: a guarded text generation and a guarded image generation, end to end.

With the small real models on this machine (in the Hugging Face and torch caches), or downloads asked for
(``guard demo --allow-downloads``, or GUARD_ALLOW_DOWNLOADS=1), the text comes from a small real model and the
toxicity scores from detoxify's ``original-small``. Otherwise (the default: no network connection unless asked
for) the demo builds tiny random-weight models locally and says so: their words and scores are meaningless, but every step — generation with a watermark, scoring, signing,
logging, verification — is the real code. Images always come from a tiny random diffusion pipeline (a real one is
gigabytes; point ``DiffusersImage`` at one yourself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from guard.home import guard_home
from guard.signing.keys import KeyStore

TEXT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
TOXICITY_MODEL = "original-small"
TEXT_PROMPT = "Write two friendly sentences about lighthouses."
IMAGE_PROMPT = "a lighthouse at dusk, watercolour"


@dataclass
class DemoModels:
    text: Any
    toxicity_options: dict[str, Any]
    image: Any
    notes: list[str] = field(default_factory=list)


def _models(home: Path, *, allow_downloads: bool = False) -> DemoModels:
    from core.weights import ALLOW_DOWNLOADS, offline
    from generators.diffusers_image import DiffusersImage
    from generators.transformers_text import TransformersText
    from guard.demo import tiny_models

    folder = home / "models"
    notes: list[str] = []
    text = toxicity = None
    local_only = offline(False if allow_downloads else None)
    try:
        text = TransformersText(TEXT_MODEL, local_files_only=local_only, max_new_tokens=48, do_sample=True)
        text.info  # loads the model now, so a missing one falls back here
        from detectors.toxicity import ToxicityDetector

        ToxicityDetector(model=TOXICITY_MODEL, local_files_only=local_only).score(["hello"])
        toxicity = {"model": TOXICITY_MODEL, "local_files_only": local_only}
        notes.append(f"text: {TEXT_MODEL}; toxicity: detoxify {TOXICITY_MODEL}")
    except Exception as exc:  # not on this machine (and not downloaded): say so, and build tiny local models
        how = (f"; pass --allow-downloads (or set {ALLOW_DOWNLOADS}=1) to fetch them" if local_only else "")
        notes.append(f"{TEXT_MODEL} / detoxify {TOXICITY_MODEL} unavailable ({type(exc).__name__}{how}); using "
                     "tiny random-weight models built locally: their words and scores are meaningless, the "
                     "pipeline around them is real")
        gpt2 = folder / "tiny-gpt2"
        if not (gpt2 / "config.json").is_file():
            tiny_models.build_tiny_gpt2(gpt2)
        text = TransformersText(gpt2, device="cpu", max_new_tokens=80, do_sample=True)
        detox_dir = folder / "tiny-detoxify"
        files = tiny_models.DetoxifyFiles(detox_dir / "toxic_tiny.ckpt", detox_dir / "config")
        if not files.checkpoint.is_file():
            # Biased low, like a real model on harmless text, so the demo shows an allowed output end to end.
            files = tiny_models.build_tiny_detoxify(detox_dir, label_bias=-4.0)
        toxicity = {"checkpoint": str(files.checkpoint), "config_dir": str(files.config_dir)}
    pipe = folder / "tiny-sd"
    if not (pipe / "model_index.json").is_file():
        tiny_models.build_tiny_pipeline(pipe)
    notes.append("image: a tiny random-weight Stable Diffusion pipeline built locally (real pipelines are GBs)")
    return DemoModels(text=text, toxicity_options=toxicity, image=DiffusersImage(pipe, device="cpu"), notes=notes)


def _policy(toxicity_options: dict[str, Any]):
    """The shipped demo policy with the toxicity detector pointed at the models actually in use."""
    from guard.policy import Policy, load

    base = load("demo")
    data = base.model_dump(mode="json")
    for stage in ("prompt", "output"):
        for rule in data["stages"][stage]:
            if rule["detector"] == "toxicity":
                rule["options"] = dict(toxicity_options)
    return Policy.model_validate({**data, "source": base.source, "sha256": base.sha256})


def run_demo(home: Path | None = None, *, say: Callable[[str], None] = lambda message: None,
             allow_downloads: bool = False) -> dict[str, Any]:
    """Run both generations and verify the log; ``say`` hears progress notes (rich markup). Returns the summary."""
    from guard.pipeline.guard import Guard
    from guard.provenance.verify import verify_log
    from guard.watermark.text import detect_text_watermark

    home = home or guard_home()
    keys = KeyStore(home / "keys")
    if not keys.exists():
        keys.init()
        say(f"created keys in {keys.directory}")
    say("preparing models…")
    models = _models(home, allow_downloads=allow_downloads)
    for note in models.notes:
        say(f"[yellow]note[/]: {note}")
    guard = Guard(_policy(models.toxicity_options), log=home / "provenance.db", keys=keys)
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
            "verdict": text.verdict, "file": str(text_file), "signature": str(envelope),
            "record_index": text.index, "record_id": text.record_id,
            "toxicity": {s["label"]: s["value"] for s in text.scores if s["detector"] == "toxicity"
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

    report = verify_log(guard.log, keys.log_public_key())
    summary["log_verification"] = {"ok": report.ok, "size": report.size, "checkpoints": report.checkpoints_checked}
    return summary
