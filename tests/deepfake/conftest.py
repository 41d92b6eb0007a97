"""Tiny random-weight models in the published formats of each backend, and small image sets, built offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_C2PA = Path(__file__).resolve().parents[2].parent / "shared" / "interop" / "c2pa"
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "camera", "coins", "brick", "grass", "gravel", "cell", "clock")


def natural_images() -> dict[str, np.ndarray]:
    """scikit-image's bundled photographs as RGB uint8 (greyscale ones repeated over three channels)."""
    from skimage import data

    out = {}
    for name in SKIMAGE_PHOTOS:
        image = getattr(data, name)()
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        out[name] = np.ascontiguousarray(image[:, :, :3].astype(np.uint8))
    return out


def up_convolution(patch: np.ndarray) -> np.ndarray:
    """A "generated" version of a patch: 2x down-sampling, then the up-sampling of a generator's transposed
    convolution (zero insertion + a 3x3 bilinear kernel), the artefact Durall et al. detect in the spectrum."""
    import cv2

    small = cv2.resize(patch, (patch.shape[1] // 2, patch.shape[0] // 2), interpolation=cv2.INTER_AREA)
    up = np.zeros((small.shape[0] * 2, small.shape[1] * 2, 3), np.float32)
    up[::2, ::2] = small
    kernel = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], np.float32)
    return np.clip(cv2.filter2D(up, -1, kernel), 0, 255).astype(np.uint8)


def patches(image: np.ndarray, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    height, width = image.shape[:2]
    ys, xs = rng.integers(0, height - size, count), rng.integers(0, width - size, count)
    return [np.ascontiguousarray(image[y : y + size, x : x + size]) for y, x in zip(ys, xs)]


def write_pngs(folder: Path, images: list[np.ndarray], prefix: str = "img") -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(image).save(path, compress_level=1)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return natural_images()


@pytest.fixture(scope="session")
def real_fake_sets(tmp_path_factory, photos):
    """Folders of natural patches and their up-convolved "generated" twins, split by source photograph so that
    held-out images come from photographs never seen in training."""
    root = tmp_path_factory.mktemp("realfake")
    rng = np.random.default_rng(0)
    names = sorted(photos)
    split = {"train": names[::2], "test": names[1::2]}
    out = {}
    for part, chosen in split.items():
        real = [p for name in chosen for p in patches(photos[name], 16, 128, rng)]
        out[part] = (
            write_pngs(root / part / "real", real),
            write_pngs(root / part / "fake", [up_convolution(p) for p in real]),
        )
    return out


@pytest.fixture(scope="session")
def tiny_hf_classifier(tmp_path_factory) -> Path:
    """A ViT image classifier with labels real/fake and its image processor, saved like a hub repository."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "tiny-vit-deepfake"
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=2, id2label={0: "real", 1: "fake"},
                       label2id={"real": 0, "fake": 1})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    """A full CLIP checkpoint (text and vision towers, like openai/clip-vit-large-patch14) and a linear probe in
    UniversalFakeDetect's ``fc_weights.pth`` format: ``{"weight": [1, D], "bias": [1]}``."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("clip")
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "vocab_size": 100, "max_position_embeddings": 16},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 56, "patch_size": 14},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(root / "tiny-clip")
    torch.save({"weight": torch.randn(1, 16), "bias": torch.randn(1)}, root / "fc_weights.pth")
    return root / "tiny-clip", root / "fc_weights.pth"


def torchvision_resnet_state(widths=(4, 8, 16, 32), depths=(2, 1, 1, 1), stem=8, seed=0) -> dict:
    """A random bottleneck ResNet state dict with torchvision's key names and shapes (``torchvision.models.resnet``
    layout: ``conv1``/``bn1`` stem, ``layer{i}.{j}.conv{1,2,3}``/``bn{1,2,3}``, ``downsample.0/1`` on the first
    block of each layer, ``fc``), written out by hand because torchvision cannot be installed here."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name, out_c, in_c, k):
        state[f"{name}.weight"] = torch.randn(out_c, in_c, k, k, generator=gen) * (2.0 / (in_c * k * k)) ** 0.5

    def bn(name, c):
        state[f"{name}.weight"] = 1.0 + 0.1 * torch.randn(c, generator=gen)
        state[f"{name}.bias"] = 0.1 * torch.randn(c, generator=gen)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=gen)
        state[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=gen)
        state[f"{name}.num_batches_tracked"] = torch.tensor(100)

    conv("conv1", stem, 3, 7)
    bn("bn1", stem)
    in_c = stem
    for i, (width, depth) in enumerate(zip(widths, depths), start=1):
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
    state["fc.weight"] = torch.randn(1, in_c, generator=gen) * 0.1
    state["fc.bias"] = torch.zeros(1)
    return state


@pytest.fixture(scope="session")
def tiny_cnndetection(tmp_path_factory) -> Path:
    """A checkpoint in CNNDetection's format: ``{"model": torchvision_state_dict}``."""
    import torch

    path = tmp_path_factory.mktemp("cnndet") / "blur_jpg_prob0.5.pth"
    torch.save({"model": torchvision_resnet_state()}, path)
    return path
