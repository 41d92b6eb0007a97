"""MTCNN face detection (Zhang, Zhang, Li and Qiao, IEEE SPL 2016) in plain torch, on facenet-pytorch's weights.

Three small networks in a cascade: P-Net proposes face windows over an image pyramid, R-Net rejects most of
them on 24 x 24 crops, O-Net confirms the rest on 48 x 48 crops and refines the boxes. It finds faces a
frontal Haar cascade misses (turned heads, profile views, partial occlusion) at a few milliseconds an image.

The weights are the ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` state dicts that the ``facenet-pytorch`` package
ships (MIT). That package imports torchvision, which does not install beside the CPU torch this project pins, so
``guard models install mtcnn`` installs it without its dependencies and only its three files are read
(``weights_only``). The layer names below
are the state dicts' keys. Two facts about these weights are followed exactly: inputs are RGB scaled to
``(x - 127.5) / 128``, and the dense layers read the last feature map flattened in (width, height, channel)
order, as the original Caffe models did.

Costs are bounded like the Haar finder's: the pyramid starts where the smallest face of interest is one 12-pixel
P-Net window, so a phone photo costs about what a thumbnail does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.hashing import sha256_file
from core.weights import package_file, package_folder, torch_load, weights_package

PACKAGE = "facenet_pytorch"
FILES = ("pnet.pt", "rnet.pt", "onet.pt")
THRESHOLDS = (0.6, 0.7, 0.7)  # face probability each stage needs (the published values)
FACTOR = 0.709  # pyramid step: the area halves every two scales
WINDOW = 12  # P-Net's window: a face this many pixels wide at some pyramid scale is found


def weights_folder() -> Path:
    """The folder of the three state dicts inside the installed facenet-pytorch, found without importing it and
    each file checked against its pinned SHA-256 (``core.weights.PACKAGES``, where it is ``mtcnn``);
    ``ModelUnavailableError`` with the install line when it is not installed or a file differs from its pin."""
    return package_file(PACKAGE, "data")


def installed() -> bool:
    """Whether facenet-pytorch's three files are on this machine: a few file look-ups, no hashing, so it can be
    asked for every image (a server sees the package once it is installed); ``weights_folder`` verifies them."""
    folder = package_folder(weights_package(PACKAGE))
    return folder is not None and all((folder / "data" / name).is_file() for name in FILES)


def _networks():
    """P-Net, R-Net and O-Net as modules whose parameter names are the state dicts' keys."""
    from torch import nn

    class Stage(nn.Module):
        def __init__(self, layers: list[tuple[str, nn.Module]], heads: list[str], dense_from: str | None,
                     unused: tuple[str, ...] = ()):
            super().__init__()
            for name, layer in layers:
                self.add_module(name, layer)
            self.order = [name for name, _ in layers if name not in heads and name not in unused]
            self.heads = heads
            self.dense_from = dense_from  # first dense layer: flatten (W, H, C) before it

        def forward(self, x):
            for name in self.order:
                if name == self.dense_from:
                    x = x.permute(0, 3, 2, 1).flatten(1)
                x = getattr(self, name)(x)
            return [getattr(self, head)(x) for head in self.heads]

    def conv(cin, cout, k):
        return nn.Conv2d(cin, cout, kernel_size=k)

    def pool(k):
        return nn.MaxPool2d(k, 2, ceil_mode=True)

    pnet = Stage([("conv1", conv(3, 10, 3)), ("prelu1", nn.PReLU(10)), ("pool1", pool(2)),
                  ("conv2", conv(10, 16, 3)), ("prelu2", nn.PReLU(16)), ("conv3", conv(16, 32, 3)),
                  ("prelu3", nn.PReLU(32)), ("conv4_1", conv(32, 2, 1)), ("conv4_2", conv(32, 4, 1))],
                 ["conv4_1", "conv4_2"], None)
    rnet = Stage([("conv1", conv(3, 28, 3)), ("prelu1", nn.PReLU(28)), ("pool1", pool(3)),
                  ("conv2", conv(28, 48, 3)), ("prelu2", nn.PReLU(48)), ("pool2", pool(3)),
                  ("conv3", conv(48, 64, 2)), ("prelu3", nn.PReLU(64)), ("dense4", nn.Linear(576, 128)),
                  ("prelu4", nn.PReLU(128)), ("dense5_1", nn.Linear(128, 2)), ("dense5_2", nn.Linear(128, 4))],
                 ["dense5_1", "dense5_2"], "dense4")
    onet = Stage([("conv1", conv(3, 32, 3)), ("prelu1", nn.PReLU(32)), ("pool1", pool(3)),
                  ("conv2", conv(32, 64, 3)), ("prelu2", nn.PReLU(64)), ("pool2", pool(3)),
                  ("conv3", conv(64, 64, 3)), ("prelu3", nn.PReLU(64)), ("pool3", pool(2)),
                  ("conv4", conv(64, 128, 2)), ("prelu4", nn.PReLU(128)), ("dense5", nn.Linear(1152, 256)),
                  ("prelu5", nn.PReLU(256)), ("dense6_1", nn.Linear(256, 2)), ("dense6_2", nn.Linear(256, 4)),
                  ("dense6_3", nn.Linear(256, 10))],
                 ["dense6_1", "dense6_2"], "dense5", unused=("dense6_3",))  # landmarks: loaded, not needed
    return pnet, rnet, onet


@dataclass
class Mtcnn:
    pnet: Any
    rnet: Any
    onet: Any
    model_id: str

    def detect(self, rgb: np.ndarray, min_face: float) -> np.ndarray:
        """Faces in an RGB ``uint8`` array as rows ``x1, y1, x2, y2, probability`` (pixels, unclipped)."""
        import torch

        with torch.inference_mode():
            boxes = self._propose(rgb, min_face)
            boxes = self._refine(rgb, boxes, self.rnet, 24, THRESHOLDS[1])
            boxes = self._refine(rgb, boxes, self.onet, 48, THRESHOLDS[2], overlap="min")
        return boxes

    def _propose(self, rgb: np.ndarray, min_face: float) -> np.ndarray:
        import cv2
        import torch

        height, width = rgb.shape[:2]
        scale, found = WINDOW / min_face, []
        while min(height, width) * scale >= WINDOW:
            size = (int(width * scale) + 1, int(height * scale) + 1)
            resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            prob, reg = self.pnet(_tensor(resized[None]))
            prob, reg = torch.softmax(prob, 1)[0, 1].numpy(), reg[0].numpy()
            rows, cols = np.nonzero(prob >= THRESHOLDS[0])
            if len(rows):
                # each output cell is a 12-pixel window at stride 2 of the scaled image
                x1, y1 = np.floor((2 * cols + 1) / scale), np.floor((2 * rows + 1) / scale)
                x2, y2 = np.floor((2 * cols + WINDOW) / scale), np.floor((2 * rows + WINDOW) / scale)
                cells = np.stack([x1, y1, x2, y2, prob[rows, cols], *reg[:, rows, cols]], axis=1)
                found.append(cells[nms(cells, 0.5)])
            scale *= FACTOR
        if not found:
            return np.zeros((0, 5))
        cells = np.concatenate(found)
        cells = cells[nms(cells, 0.7)]
        size = np.stack([cells[:, 2] - cells[:, 0], cells[:, 3] - cells[:, 1]] * 2, axis=1)
        return _square(np.concatenate([cells[:, :4] + cells[:, 5:9] * size, cells[:, 4:5]], axis=1))

    def _refine(self, rgb, boxes, net, side: int, threshold: float, overlap: str = "union") -> np.ndarray:
        import torch

        if not len(boxes):
            return boxes
        crops = np.stack([_crop(rgb, box, side) for box in boxes])
        prob, reg = net(_tensor(crops))
        prob, reg = torch.softmax(prob, 1)[:, 1].numpy(), reg.numpy()
        keep = prob > threshold
        boxes, prob, reg = boxes[keep], prob[keep], reg[keep]
        if overlap == "union":  # R-Net: suppress, then regress; O-Net: regress, then suppress by the smaller box
            picked = nms(np.concatenate([boxes[:, :4], prob[:, None]], axis=1), 0.7)
            boxes, prob, reg = boxes[picked], prob[picked], reg[picked]
        size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1] * 2, axis=1)
        out = np.concatenate([boxes[:, :4] + reg * size, prob[:, None]], axis=1)
        if overlap == "min":
            return out[nms(out, 0.7, by_min=True)]
        return _square(out)


def _tensor(images: np.ndarray):
    """NHWC uint8 to NCHW float32 scaled as the networks were trained: (x - 127.5) / 128."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x - 127.5) * 0.0078125


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre (the next network takes square crops)."""
    out = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out[:, 0] = boxes[:, 0] + (width - side) / 2
    out[:, 1] = boxes[:, 1] + (height - side) / 2
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _crop(rgb: np.ndarray, box: np.ndarray, side: int) -> np.ndarray:
    """The box's pixels (zeros where it leaves the image), resized to ``side`` x ``side``."""
    import cv2

    x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
    w, h = max(1, x2 - x1 + 1), max(1, y2 - y1 + 1)
    canvas = np.zeros((h, w, 3), np.uint8)
    height, width = rgb.shape[:2]
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(width, x2 + 1), min(height, y2 + 1)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
    return cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA)


def nms(boxes: np.ndarray, threshold: float, *, by_min: bool = False) -> np.ndarray:
    """Indices of the boxes (rows ``x1, y1, x2, y2, score, ...``) kept by greedy non-maximum suppression: a box
    goes when it overlaps a higher-scoring kept one by more than ``threshold`` (intersection over union, or over
    the smaller box with ``by_min``)."""
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(-score, kind="stable"), []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = w * h
        denominator = np.minimum(area[best], area[rest]) if by_min else area[best] + area[rest] - inter
        order = rest[inter / denominator <= threshold]
    return np.asarray(keep, dtype=np.int64)


@lru_cache(maxsize=4)
def load(folder: str | None = None) -> Mtcnn:
    """The three networks from ``folder`` (default: the installed facenet-pytorch's), one copy per process."""
    path = Path(folder) if folder else weights_folder()
    nets = _networks()
    digests = []
    for net, name in zip(nets, FILES):
        file = path / name
        state = torch_load(file, "MTCNN weights")
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{file}: not the MTCNN state dict this finder expects ({str(exc)[:200]})") from None
        net.eval()
        digests.append(sha256_file(file))
    import hashlib

    combined = hashlib.sha256("".join(digests).encode()).hexdigest()
    return Mtcnn(*nets, model_id=f"mtcnn:{path.parent.name if folder is None else path.name}@{combined[:16]}")
