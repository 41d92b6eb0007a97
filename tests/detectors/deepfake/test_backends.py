"""Each backend loads from local files in its published format and scores a batch, and scores what the
original architecture computes on the same crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detectors.base import Score
from detectors.deepfake import DeepfakeDetector
from detectors.deepfake.hf_classifier import fake_label_indices


def _check_scores(results, n):
    assert len(results) == n
    for scores in results:
        assert len(scores) == 1
        score = scores[0]
        assert isinstance(score, Score) and score.detector == "deepfake" and score.label == "fake"
        assert 0.0 <= score.value <= 1.0
        assert score.details["aggregate"] == "max"
        assert score.value == pytest.approx(max([score.details["whole_image"]] + [f["value"] for f in score.details["faces"]]), abs=1e-6)


def test_hf_classifier_scores_whole_image_and_faces(tiny_hf_classifier, photos):
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    # side=0: native pixels, so the expected values below are the model's own processor on the photo
    detector = DeepfakeDetector(backend="hf", model=str(tiny_hf_classifier), device="cpu", dtype="fp32", workers=0,
                                side=0)
    images = [Image.fromarray(photos["astronaut"]), Image.fromarray(photos["coffee"])]
    results = detector.score(images)
    _check_scores(results, 2)
    astronaut = results[0][0]
    assert astronaut.model.startswith(f"hf:{tiny_hf_classifier}@")
    assert len(astronaut.details["faces"]) == 1  # the astronaut's face
    # the whole-image value is the model's softmax mass on "fake" for its own processor's input
    processor = AutoImageProcessor.from_pretrained(tiny_hf_classifier)
    model = AutoModelForImageClassification.from_pretrained(tiny_hf_classifier).eval()
    with torch.no_grad():
        logits = model(**processor(images=images[0], return_tensors="pt")).logits
    assert astronaut.details["whole_image"] == pytest.approx(torch.softmax(logits, -1)[0, 1].item(), abs=1e-5)


def test_fake_labels_are_named_or_recognised():
    assert fake_label_indices({0: "real", 1: "fake"}, None) == [1]
    assert fake_label_indices({0: "Realism", 1: "Deepfake"}, None) == [1]
    assert fake_label_indices({0: "human", 1: "artificial"}, None) == [1]
    assert fake_label_indices({0: "nature", 1: "sd", 2: "mj"}, ["SD", "mj"]) == [1, 2]
    with pytest.raises(ValueError, match="cannot tell which labels mean fake"):
        fake_label_indices({0: "cat", 1: "dog"}, None)
    with pytest.raises(ValueError, match=r"\['gan'\] are not labels"):
        fake_label_indices({0: "real", 1: "fake"}, ["gan"])


def test_clip_probe_loads_released_format_on_a_full_clip_checkpoint(tiny_clip, photos):
    import torch
    from transformers import CLIPModel

    from detectors.deepfake.clip_probe import CLIP_MEAN, CLIP_STD
    from detectors.deepfake.images import CropNormalize

    model_dir, fc = tiny_clip
    detector = DeepfakeDetector(backend="probe", model=str(model_dir), checkpoint=str(fc), device="cpu", side=0,
                                dtype="fp32", faces=False, workers=0)
    results = detector.score([photos["chelsea"], photos["rocket"], photos["astronaut"]])
    _check_scores(results, 3)
    # UniversalFakeDetect: sigmoid(fc(encode_image(x))); encode_image is CLIPModel.get_image_features
    clip = CLIPModel.from_pretrained(model_dir).eval()
    probe = torch.load(fc, weights_only=True)
    pixels = torch.from_numpy(CropNormalize(56, CLIP_MEAN, CLIP_STD)(photos["chelsea"]))[None]
    with torch.no_grad():
        features = clip.get_image_features(pixel_values=pixels)
        features = getattr(features, "pooler_output", features)
        expected = torch.sigmoid(features @ probe["weight"].T + probe["bias"]).item()
    assert results[0][0].value == pytest.approx(expected, abs=1e-5)
    assert results[0][0].model.startswith(f"probe:{model_dir}@")


def test_int8_probe_stays_close_to_fp32(tiny_clip, photos):
    model_dir, fc = tiny_clip
    images = [photos["chelsea"], photos["rocket"]]
    options = dict(backend="probe", model=str(model_dir), checkpoint=str(fc), device="cpu", faces=False, workers=0,
                   side=0)
    fp32 = [s[0].value for s in DeepfakeDetector(**options, dtype="fp32").score(images)]
    int8 = DeepfakeDetector(**options, dtype="int8")
    assert int8.backend().runner.int8
    np.testing.assert_allclose([s[0].value for s in int8.score(images)], fp32, atol=0.02)


def test_clip_probe_rejects_wrong_files(tiny_clip, tmp_path):
    import torch

    from detectors.deepfake.clip_probe import load_probe

    model_dir, _ = tiny_clip
    torch.save({"fc.weight": torch.zeros(1, 16)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="keys weight and bias"):
        load_probe(tmp_path / "other.pth")
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, tmp_path / "vitl.pth")
    with pytest.raises(ValueError, match="probe expects 768-dim embeddings"):
        DeepfakeDetector(backend="probe", model=str(model_dir), checkpoint=str(tmp_path / "vitl.pth"),
                         device="cpu").model_id
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        DeepfakeDetector(backend="probe", model=str(model_dir), checkpoint=str(tmp_path / "missing.pth")).model_id


def _reference_resnet(state, x):
    """torchvision's bottleneck ResNet forward, written with torch.nn.functional over the checkpoint's own keys."""
    import torch.nn.functional as F

    def bn(t, name):
        return F.batch_norm(t, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                            state[f"{name}.bias"], training=False, eps=1e-5)

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1")), 3, 2, 1)
    for i in range(1, 5):
        j = 0
        while f"layer{i}.{j}.conv1.weight" in state:
            p = f"layer{i}.{j}"
            stride = 2 if (i > 1 and j == 0) else 1
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, state[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
            out = bn(F.conv2d(out, state[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in state:
                x = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
            j += 1
    return F.linear(x.mean(dim=(2, 3)), state["fc.weight"], state["fc.bias"])


def test_cnndetection_checkpoint_maps_onto_transformers_resnet(tiny_cnndetection, photos):
    import torch

    from detectors.deepfake.images import CropNormalize
    from detectors.deepfake.resnet import IMAGENET_MEAN, IMAGENET_STD, load_checkpoint

    state = torch.load(tiny_cnndetection, weights_only=True)["model"]
    model = load_checkpoint(tiny_cnndetection).eval()
    assert model.config.depths == [2, 1, 1, 1] and model.config.hidden_sizes == [16, 32, 64, 128]
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        ours = model(pixel_values=x).logits
    torch.testing.assert_close(ours, _reference_resnet(state, x), rtol=1e-4, atol=1e-4)

    detector = DeepfakeDetector(backend="resnet", checkpoint=str(tiny_cnndetection), device="cpu", dtype="fp32", side=0,
                                workers=0)
    results = detector.score([photos["astronaut"], photos["coins"]])
    _check_scores(results, 2)
    assert results[0][0].model.startswith("resnet:blur_jpg_prob0.5.pth@")
    # the detector (BatchNorm folded into the convolutions) still computes CNNDetection's sigmoid(logit)
    pixels = torch.from_numpy(CropNormalize(224, IMAGENET_MEAN, IMAGENET_STD)(photos["coins"]))[None]
    expected = torch.sigmoid(_reference_resnet(state, pixels)).item()
    assert results[1][0].details["whole_image"] == pytest.approx(expected, abs=1e-5)


def test_cnndetection_rejects_other_formats(tmp_path):
    import torch

    from detectors.deepfake.resnet import load_checkpoint

    torch.save({"state_dict": {}}, tmp_path / "a.pth")
    with pytest.raises(ValueError, match='expected CNNDetection'):
        load_checkpoint(tmp_path / "a.pth")
    torch.save({"model": {"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1, 2), "head.x": torch.zeros(1)}},
               tmp_path / "b.pth")
    with pytest.raises(ValueError, match="unexpected key 'head.x'"):
        load_checkpoint(tmp_path / "b.pth")
    (tmp_path / "c.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch file"):
        load_checkpoint(tmp_path / "c.pth")


def test_spectral_model_round_trips_through_its_file(tmp_path, photos):
    from detectors.deepfake import spectral

    rng = np.random.default_rng(1)
    real = rng.normal(size=(20, 16))
    fake = rng.normal(loc=0.5, size=(20, 16))
    model = spectral.train(real, fake, bins=16)
    path = model.save(tmp_path / "spectral.json")
    loaded = spectral.load(path)
    np.testing.assert_allclose(loaded.predict(fake), model.predict(fake))
    assert loaded.model_id.startswith("spectral:spectral.json@")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a spectral model file"):
        spectral.load(tmp_path / "bad.json")
