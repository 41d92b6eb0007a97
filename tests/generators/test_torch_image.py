"""TorchImage: any latent-to-image module (a tiny DCGAN here; the gan-face-generate DCGAN when installed) as a
generator whose images are reproducible from the recorded seed and go through the guard's image path."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.errors import InputError, ModelUnavailableError
from generators.torch_image import TorchImage, load_state_dict

LATENT = (8, 1, 1)


def _tiny_dcgan():
    """A DCGAN generator in miniature: transposed convolutions from a 1 x 1 latent to 16 x 16 RGB, tanh out."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(True),
        nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(True),
        nn.ConvTranspose2d(8, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )
    with torch.no_grad():
        net[-2].weight.mul_(20.0)  # from near-grey to images that differ with the latent
    return net


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("gan") / "weights.tar"
    torch.save({"netG_state_dict": _tiny_dcgan().state_dict(), "epoch": 3}, path)
    module = _tiny_dcgan()
    module.load_state_dict(load_state_dict(path, "netG_state_dict"))
    return TorchImage(module, latent_shape=LATENT, model_id="tiny-dcgan", weights=path, device="cpu",
                      batch_size=2, notes="test weights")


def _pixels(generation) -> np.ndarray:
    return np.asarray(generation.content).astype(int)


def test_each_image_is_reproducible_alone_from_its_seed(gan):
    batch = gan.generate(["a", "b", "c"], seed=40)
    assert [g.params["seed"] for g in batch] == [40, 41, 42]
    assert [g.content.size for g in batch] == [(16, 16)] * 3
    first = batch[0].params
    assert first["conditioning"] == "none" and first["latent_shape"] == [8, 1, 1] and first["notes"] == "test weights"
    for i in range(3):
        alone = gan.generate(["x"], seed=40 + i)[0]
        assert np.abs(_pixels(alone) - _pixels(batch[i])).max() <= 1  # batch size may move a level by one
        assert alone.params["latent_sha256"] == batch[i].params["latent_sha256"]
    assert np.abs(_pixels(batch[0]) - _pixels(batch[1])).max() > 20
    import torch

    latent = torch.randn(LATENT, generator=torch.Generator("cpu").manual_seed(40))
    assert first["latent_sha256"] == hashlib.sha256(latent.numpy().tobytes()).hexdigest()


def test_latents_from_the_hook_replace_the_seed(gan):
    import torch

    latent = torch.randn(LATENT, generator=torch.Generator().manual_seed(7))
    a = gan.generate(["x"], seed=1, hooks={"latents": latent})[0]
    b = gan.generate(["x"], seed=999, hooks={"latents": latent})[0]
    assert np.array_equal(_pixels(a), _pixels(b)) and "seed" not in a.params
    two = gan.generate(["x", "y"], hooks={"latents": latent})
    assert two[0].params["latent_sha256"] == two[1].params["latent_sha256"] == a.params["latent_sha256"]
    with pytest.raises(InputError, match=r"latents must be of shape \(8, 1, 1\)"):
        gan.generate(["x"], hooks={"latents": torch.zeros(1, 4, 1, 1)})
    with pytest.raises(InputError, match="3 latents for 2 prompts"):
        gan.generate(["x", "y"], hooks={"latents": torch.zeros(3, 8, 1, 1)})


def test_size_parameter_and_errors(gan, tmp_path):
    big = gan.generate(["x"], seed=3, size=64)[0]
    assert big.content.size == (64, 64) and big.params["native_size"] == [16, 16]
    with pytest.raises(InputError, match="unknown generation parameters: steps"):
        gan.generate(["x"], steps=4)
    with pytest.raises(InputError, match="size must be a whole number of pixels between 8 and 4096"):
        gan.generate(["x"], size=2)
    import torch

    flat = TorchImage(torch.nn.Flatten(), latent_shape=LATENT, model_id="flat", device="cpu")
    with pytest.raises(InputError, match=r"expected images \[batch, 3, H, W\]"):
        flat.generate(["x"], seed=0)
    with pytest.raises(InputError, match="no 'netD' in the file"):
        load_state_dict(gan.weights, "netD")
    with pytest.raises(ModelUnavailableError, match="weights file not found"):
        load_state_dict(tmp_path / "missing.pt")


def test_weights_hash_names_the_file_or_the_tensors(gan):
    assert gan.info.name == "torch" and gan.info.model_id == "tiny-dcgan"
    assert gan.info.weights_sha256 == hashlib.sha256(gan.weights.read_bytes()).hexdigest()
    unnamed = TorchImage(_tiny_dcgan(), latent_shape=LATENT, model_id="m", device="cpu")
    again = TorchImage(_tiny_dcgan(), latent_shape=LATENT, model_id="m", device="cpu")
    assert unnamed.info.weights_sha256 == again.info.weights_sha256 != gan.info.weights_sha256


def test_gan_images_take_the_guards_image_path(gan, tmp_path, keys):
    from guard.pipeline.guard import Guard
    from guard.policy import parse
    from guard.watermark.image import detect

    guard = Guard(parse("name: gan\nprompt_storage: plain\n"), log=tmp_path / "log.db", keys=keys)
    result = guard.wrap(gan)("a face", seed=12, size=128)
    assert result.verdict == "allow" and result.signature["type"] == "c2pa" and result.watermark
    record = guard.log.get(result.index).data
    assert record["generator"]["name"] == "torch" and record["generator"]["weights_sha256"] == gan.info.weights_sha256
    assert record["params"]["seed"] == 12 and record["params"]["latent_sha256"]
    found = detect(result.artifact, keys.watermark_secret())
    assert found.found and found.payload.record_id == result.record_id


@pytest.mark.weights
def test_gan_face_generate_makes_a_face():
    from guard.demo import gan

    try:
        generator = gan.face_generator()
    except ModelUnavailableError:
        pytest.skip("gan-face-generate is not installed (guard models install gan-faces)")
    images = generator.generate(["a face"] * 4, seed=5, size=256)
    assert [g.content.size for g in images] == [(256, 256)] * 4
    assert generator.info.weights_sha256 == "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"
    assert images[0].params["notes"] == gan.DATA_NOTE
    from detectors.deepfake import faces

    if faces.resolve("auto") == "mtcnn":
        assert sum(bool(faces.find_faces(g.content)) for g in images) >= 3  # a real GAN's faces are faces


def _returning(kind: str):
    """A module that ignores its latents and returns what a foreign module may give instead of images."""
    import torch

    outputs = {
        "nan": lambda n: torch.full((n, 3, 8, 8), float("nan")),
        "tuple": lambda n: (torch.zeros(n, 3, 8, 8),),
        "one image": lambda n: torch.zeros(1, 3, 8, 8),
        "uint8": lambda n: torch.zeros(n, 3, 8, 8, dtype=torch.uint8),
        "no rows": lambda n: torch.zeros(n, 3, 0, 8),
    }
    module = type("Returns", (torch.nn.Module,), {"forward": lambda self, z: outputs[kind](z.shape[0])})()
    return TorchImage(module, latent_shape=LATENT, model_id="odd", device="cpu")


@pytest.mark.parametrize(("kind", "message"), [
    ("nan", "the module's output holds NaN or infinite values"),
    ("tuple", r"expected a tensor of images \[batch, 3, H, W\], got tuple"),
    ("one image", "returned 1 images for 2 latents"),
    ("uint8", r"expected floating-point pixels in output_range \(-1.0, 1.0\), got uint8"),
    ("no rows", r"expected images \[batch, 3, H, W\], got \(2, 3, 0, 8\)"),
])
def test_what_a_module_returns_is_checked_before_it_becomes_an_image(kind, message):
    # unchecked, a NaN gave a black image, uint8 a grey one, and one image for two latents lost the second prompt
    with pytest.raises(InputError, match=f"^odd: {message}"):
        _returning(kind).generate(["a", "b"], seed=1)


def test_a_module_that_fails_on_its_latents_is_named_with_their_shape():
    wrong = TorchImage(_tiny_dcgan(), latent_shape=(5, 1, 1), model_id="dcgan", device="cpu")
    with pytest.raises(InputError, match=r"^dcgan: the module failed on latents of shape \(1, 5, 1, 1\)"):
        wrong.generate(["a"], seed=1)
    with pytest.raises(InputError, match="latent_shape must be one or more positive whole numbers"):
        TorchImage(_tiny_dcgan(), latent_shape=(-1,), model_id="m", device="cpu")
    with pytest.raises(InputError, match="output_range must be"):
        TorchImage(_tiny_dcgan(), latent_shape=LATENT, model_id="m", device="cpu", output_range=(float("nan"), 1))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got function"):
        TorchImage(lambda z: z, latent_shape=LATENT, model_id="m", device="cpu")


@pytest.mark.parametrize(("params", "message"), [
    ({"size": 0}, "size must be a whole number of pixels between 8 and 4096, got 0"),
    ({"size": 100000}, "got 100000"),
    ({"size": "64"}, "got '64'"),
    ({"size": 64.5}, "got 64.5"),
    ({"seed": "abc"}, "seed must be a whole number, got 'abc'"),
    ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
    ({"seed": -1}, "seed must be between 0 and 18446744073709551614 for 2 image"),
    ({"seed": 2**64 - 1}, "got 18446744073709551615"),
])
def test_bad_size_and_seed_are_input_errors(gan, params, message):
    with pytest.raises(InputError, match=message):
        gan.generate(["a", "b"], **params)


def test_bad_latents_from_the_hook_are_input_errors(gan):
    import torch

    with pytest.raises(InputError, match="latents hold NaN or infinite values"):
        gan.generate(["a"], hooks={"latents": torch.full(LATENT, float("inf"))})
    with pytest.raises(InputError, match="latents must be numbers"):
        gan.generate(["a"], hooks={"latents": "noise"})


def test_same_seed_same_bytes_also_from_two_threads_at_once(gan):
    from concurrent.futures import ThreadPoolExecutor

    def png(seed: int) -> bytes:
        return gan.generate(["a"], seed=seed, size=32)[0].content.tobytes()

    alone = {seed: png(seed) for seed in range(4)}
    assert len(set(alone.values())) == 4 and png(2) == alone[2]
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(png, [0, 1, 2, 3] * 3))
    assert both == [alone[s] for s in [0, 1, 2, 3] * 3]
