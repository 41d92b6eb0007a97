"""Faces are found and cropped on a bundled photograph; the batching engine gives the same answers with worker
processes as without, and turns unusable files into per-image errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detectors.deepfake import DeepfakeDetector
from detectors.deepfake.faces import Box, crop, find_faces
from detectors.deepfake.images import decode


def test_haar_finds_the_face_on_the_astronaut_photograph(photos):
    image = photos["astronaut"]  # Eileen Collins' portrait: one face, roughly x 175-275, y 60-165
    boxes = find_faces(Image.fromarray(image), finder="haar")
    assert len(boxes) == 1
    box = boxes[0]
    centre = (box.x + box.w / 2, box.y + box.h / 2)
    assert 200 < centre[0] < 250 and 90 < centre[1] < 140 and 70 < box.w < 140
    face = crop(image, box, margin=0.3)
    grown = box.expanded(0.3, image.shape[1], image.shape[0])
    assert face.shape[:2] == (grown.h, grown.w) and grown.w > box.w
    assert find_faces(photos["coffee"], finder="haar") == [] and find_faces(photos["rocket"], finder="haar") == []


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_faces_are_found_in_greyscale_of_more_than_8_bits(photos, tmp_path, mode):
    """A 16-bit PNG opens as "I;16", a 16-bit TIFF as "I"; PIL's own conversion to RGB clips both to white."""
    grey = np.asarray(Image.fromarray(photos["astronaut"]).convert("L"), dtype=np.uint16) * 257
    if mode == "F":
        image = Image.fromarray(grey.astype(np.float32) / 65535, mode="F")  # floats in 0-1
    else:
        path = tmp_path / ("face.png" if mode == "I;16" else "face.tif")
        (Image.fromarray(grey) if mode == "I;16" else Image.fromarray(grey.astype(np.int32), "I")).save(path)
        image = Image.open(path)
    assert image.mode == mode
    boxes = find_faces(image, finder="haar")
    assert len(boxes) == 1 and 200 < boxes[0].x + boxes[0].w / 2 < 250


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((64, 64, 2), np.uint8), "got shape"), (np.zeros(64, np.uint8), "got shape"),
    (np.zeros((1, 64, 64, 3), np.uint8), "got shape"), (np.zeros((0, 64, 3), np.uint8), "empty image array"),
    (np.zeros((64, 0), np.uint8), "empty image array"), (np.zeros((64, 64, 3), np.uint16), "uint8"),
    (np.zeros((64, 64, 3), np.float32), "uint8"),
])
def test_unusable_arrays_are_input_errors(array, message):
    from core.errors import InputError

    for finder in ("haar", "mtcnn"):
        with pytest.raises(InputError, match=message):
            find_faces(array, finder=finder)


def test_a_one_channel_array_is_greyscale(photos):
    grey = np.asarray(Image.fromarray(photos["astronaut"]).convert("L"))
    assert find_faces(grey[:, :, None], finder="haar") == find_faces(grey, finder="haar") != []


def test_box_margin_is_clipped_to_the_image():
    assert Box(0, 0, 10, 10).expanded(0.5, 12, 12) == Box(0, 0, 12, 12)


def test_workers_give_the_same_scores_as_in_process(tiny_cnndetection, photos, tmp_path):
    paths = []
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "coins", "rocket"]):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(photos[name]).save(paths[-1], quality=90)
    options = dict(backend="resnet", checkpoint=str(tiny_cnndetection), device="cpu", dtype="fp32", batch_size=2)
    inline = [r.scores[0] for r in DeepfakeDetector(**options, workers=0).iter_scores(paths)]
    pooled = [r.scores[0] for r in DeepfakeDetector(**options, workers=2).iter_scores(paths)]
    assert [s.details["faces"] for s in inline] == [s.details["faces"] for s in pooled]
    np.testing.assert_allclose([s.value for s in inline], [s.value for s in pooled], atol=1e-6)
    assert len(inline[0].details["faces"]) == 1  # the astronaut


def test_unusable_inputs_become_errors_for_that_image_only(tiny_cnndetection, photos, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(photos["coins"]).save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(photos["chelsea"]).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:4000])  # header intact, data cut
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    detector = DeepfakeDetector(backend="resnet", checkpoint=str(tiny_cnndetection), device="cpu", faces=False,
                                workers=0)
    results = list(detector.iter_scores([good, empty, truncated, text, tmp_path / "missing.png", good]))
    assert [r.error is None for r in results] == [True, False, False, False, False, True]
    assert "empty file" in results[1].error
    assert "truncated or corrupt" in results[2].error
    assert "not an image" in results[3].error
    assert "cannot read" in results[4].error
    assert results[0].scores[0].value == results[5].scores[0].value
    with pytest.raises(ValueError, match="image 1: .*empty file"):
        detector.score([good, empty])


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 100_000, 100_000)
    with pytest.raises(ValueError, match="bomb.png: possible decompression bomb"):
        decode(bomb)
    small_bomb = tmp_path / "small.png"
    _png_header_only(small_bomb, 3000, 3000)
    with pytest.raises(ValueError, match="3000x3000 image .* exceeds the limit of 1,000,000 pixels"):
        decode(small_bomb, max_pixels=1_000_000)
    assert decode(np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a tiny (wrong) data chunk: a bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
