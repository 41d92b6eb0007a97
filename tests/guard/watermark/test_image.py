"""The image watermark: exact payload under every attack of issue 5 and representative geometric ones (issue
14), invisibility, no false alarms, any size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError, KeysError
from guard.watermark import image as wm
from guard.watermark.image_attacks import ATTACKS, GEOMETRIC_ATTACKS
from tests.fixtures.shared import shared_path
from tests.fixtures.watermark import (
    OTHER_SECRET,
    SECRET,
    SKIMAGE_GREY,
    SKIMAGE_PHOTOS,
    interop_photos,
    skimage_image,
)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(im, dtype=np.float64) for im in (a, b))
    return 10 * np.log10(255.0**2 / np.mean((x - y) ** 2))


@pytest.fixture(scope="module")
def marked(attack_images, payload):
    return {name: wm.embed(image, payload, SECRET) for name, image in attack_images.items()}


# -- payload ---------------------------------------------------------------------------------------------------


def test_payload_bits_round_trip(payload):
    bits = payload.to_bits()
    assert bits.size == 80
    assert wm.WatermarkPayload.from_bits(bits) == payload


def test_payload_for_record_keeps_a_short_key_id():
    payload = wm.WatermarkPayload.for_record("0123456789ABCDEF", "9f86d081")
    assert payload == wm.WatermarkPayload("9f86", "0123456789abcdef")
    assert payload.matches_key("9f86d081") and not payload.matches_key("0000d081")


@pytest.mark.parametrize(("key_id", "record_id"), [("5a3", "0123456789abcdef"), ("5a3c", "0123"), ("5a3c", "z" * 16)])
def test_payload_rejects_malformed_ids(key_id, record_id):
    with pytest.raises(ValueError, match="hex digits"):
        wm.WatermarkPayload(key_id, record_id)


# -- robustness ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("image_name", ["astronaut", "coffee", "CA.jpg"])
def test_exact_payload_survives(marked, payload, attack, image_name):
    result = wm.detect(ATTACKS[attack](marked[image_name]), SECRET)
    assert result.found, f"{attack} on {image_name}: best sync z {result.sync_z:.1f}"
    assert result.payload == payload
    assert result.false_alarm_probability <= 1e-6
    assert 0 <= result.bit_errors_corrected < wm.coding.CODED_BITS // 4


@pytest.mark.parametrize(
    ("attack", "geometry"),
    [("scale0.3", "frame"), ("720x720", "frame"), ("1080x608", "frame"), ("width720+jpeg70", "frame"),
     ("rotate+2", "turned"), ("rotate-5", "turned"), ("rotate+5expand", "turned"), ("crop50+rescale", "search"),
     ("screenshot1.25", "search")],
)
def test_exact_payload_survives_geometric_change(marked, payload, attack, geometry):
    result = wm.detect(GEOMETRIC_ATTACKS[attack](marked["coffee"]), SECRET)
    assert result.found and result.payload == payload, f"{attack}: best sync z {result.sync_z:.1f}"
    assert result.geometry == geometry


def test_crop_without_rescale_is_found_by_the_template(marked, payload):
    """A crop keeps the tile's pixel size but leaves a tiling no frame implies: the search finds it."""
    result = wm.detect(ATTACKS["crop80"](marked["CA.jpg"]), SECRET)
    assert result.found and result.payload == payload and result.geometry == "search"


def test_v2_marks_are_still_read(monkeypatch, payload):
    """v3 adds a template outside the ring and changes nothing else: a v2 mark (no template) is still read,
    untouched, rescaled and cropped."""
    monkeypatch.setattr(wm, "TEMPLATE_SHARE", 0.0)
    v2 = wm.embed(skimage_image("coffee"), payload, SECRET)
    monkeypatch.undo()
    for attack in (lambda im: im, GEOMETRIC_ATTACKS["scale0.7"], ATTACKS["crop80"]):
        assert wm.detect(attack(v2), SECRET).payload == payload


def test_template_is_keyed_and_outside_the_ring():
    ours, other = wm._layout(SECRET), wm._layout(OTHER_SECRET)
    assert len(ours.template) == wm.TEMPLATE_POINTS
    radius = np.hypot(ours.template[:, 0], ours.template[:, 1])
    assert (radius > wm.BAND[1]).all()
    assert {tuple(p) for p in ours.template} != {tuple(p) for p in other.template}


def test_rotation_and_tile_size_are_reported(marked, payload):
    photo = marked["coffee"]  # 600x400: 6 x 4 tiles of 100 pixels
    result = wm.detect(GEOMETRIC_ATTACKS["rotate+2"](photo), SECRET)
    assert result.found and abs(abs(result.rotation) - 2.0) < 0.3
    assert all(abs(side - 100.0) < 2.0 for side in result.tile_size)


def test_untouched_image_decodes_cleanly(marked, payload):
    result = wm.detect(marked["astronaut"], SECRET)
    assert result.found and result.bit_errors_corrected <= 6 and result.confidence >= 0.95
    assert result.to_dict()["record_id"] == payload.record_id


# -- invisibility ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SKIMAGE_PHOTOS + SKIMAGE_GREY)
def test_psnr_at_least_40_db_on_skimage_images(name, payload):
    image = skimage_image(name)
    assert psnr(image, wm.embed(image, payload, SECRET)) >= 40.0


@pytest.mark.parametrize("path", interop_photos(), ids=lambda p: p.name)
def test_psnr_at_least_40_db_on_photos(path, payload):
    image = Image.open(path).convert("RGB")
    assert psnr(image, wm.embed(image, payload, SECRET)) >= 40.0


def test_flat_regions_are_spared_and_the_mark_still_read(payload):
    """A clear sky beside texture: with ``flat_level`` the sky gets under half the residual it gets without, the
    textured half a little more, and the mark is read untouched and after JPEG 75."""
    from core.imageio import jpeg_roundtrip

    rng = np.random.default_rng(5)
    sky = np.linspace(40, 70, 512)[None, :, None] * np.ones((256, 1, 3))  # a smooth gradient, no texture
    texture = skimage_image("gravel").convert("RGB").resize((512, 256))
    image = Image.fromarray(np.concatenate([sky + rng.normal(0, 0.5, sky.shape), np.asarray(texture)],
                                           axis=0).clip(0, 255).astype(np.uint8))
    spared, plain = (wm.embed(image, payload, SECRET, flat_level=level) for level in (wm.FLAT_LEVEL, 0.0))

    def rms(marked, rows):
        return float(np.sqrt(((np.asarray(marked, float) - np.asarray(image, float))[rows] ** 2).mean()))

    sky_rows, texture_rows = slice(16, 240), slice(272, 496)  # away from the seam
    assert rms(spared, sky_rows) < 0.5 * rms(plain, sky_rows)
    assert rms(spared, texture_rows) >= rms(plain, texture_rows)
    for attack in (lambda im: im, lambda im: jpeg_roundtrip(im, 75)):
        assert wm.detect(attack(spared), SECRET).payload == payload


def test_flat_level_defaults_agree():
    """The default is written in three places: the module, the policy model and the CLI option (which cannot
    import the policy's pydantic model at start-up)."""
    import typer.main

    from guard.cli import app
    from guard.policy import ImageWatermark

    embed_command = typer.main.get_command(app).commands["watermark"].commands["embed"]
    [cli_default] = [param.default for param in embed_command.params if param.name == "flat_level"]
    assert ImageWatermark().flat_level == wm.FLAT_LEVEL == cli_default
    with pytest.raises(ValueError, match="flat_level"):
        wm.embed(skimage_image("coffee"), wm.WatermarkPayload("5a3c", "0" * 16), SECRET, flat_level=-1.0)


# -- false alarms ----------------------------------------------------------------------------------------------


def _random_crops(images: list[Image.Image], count: int, seed: int) -> list[Image.Image]:
    """Crops of 64 to 192 pixels a side, any aspect ratio, anywhere in the images."""
    rng = np.random.default_rng(seed)
    crops = []
    for k in range(count):
        image = images[k % len(images)]
        w, h = (int(rng.integers(64, min(192, side) + 1)) for side in image.size)
        left, top = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
        crops.append(image.crop((left, top, left + w, top + h)))
    return crops


def test_no_detection_on_unmarked_natural_crops():
    images = [skimage_image(n) for n in SKIMAGE_PHOTOS + SKIMAGE_GREY]
    images += [Image.open(p).convert("RGB") for p in interop_photos()]
    results = wm.detect_many(_random_crops(images, 150, seed=3), SECRET)
    assert len(results) == 150
    assert not any(r.found for r in results)
    assert all(r.payload is None and r.false_alarm_probability <= 1e-9 for r in results)


def test_no_detection_with_another_key(marked):
    crops = _random_crops(list(marked.values()), 40, seed=4) + list(marked.values())
    assert not any(r.found for r in wm.detect_many(crops, OTHER_SECRET))


def test_false_alarm_bound_follows_from_the_decision_rule():
    assert wm.FALSE_ALARM_BOUND == wm.MAX_ATTEMPTS * 2.0**-wm.coding.TAG_BITS
    assert wm.FALSE_ALARM_BOUND <= 1e-9


@pytest.mark.parametrize("size", [(150, 112), (250, 188), (256, 256), (256, 200), (600, 400)])
def test_no_more_messages_checked_than_the_bound_counts(monkeypatch, size):
    """The bound counts the messages checked against the tag per image; a thumbnail reads more frame tilings than
    a photo but checks no more of them (each stage decodes only the image's highest pilot peaks): without that
    cap, coffee at 256 x 256 and 256 x 200 checks 109 and 119."""
    checked = []
    real_unframe = wm.coding.unframe
    monkeypatch.setattr(wm.coding, "unframe", lambda key, bits: checked.append(bits) or real_unframe(key, bits))
    unmarked = skimage_image("coffee").resize(size, Image.Resampling.LANCZOS)
    assert not wm.detect(unmarked, SECRET).found
    assert 0 < len(checked) <= wm.MAX_ATTEMPTS


# -- sizes, modes, errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(300, 1000), (1000, 300), (333, 777)])
def test_odd_sizes_and_aspect_ratios(size, payload):
    image = skimage_image("astronaut").resize(size, Image.Resampling.BICUBIC)
    result = wm.detect(ATTACKS["jpeg50"](wm.embed(image, payload, SECRET)), SECRET)
    assert result.found and result.payload == payload


def test_4000x3000_photo_survives_being_served_at_width_1080(payload):
    photo = shared_path("interop", "c2pa", "C.jpg")
    image = Image.open(photo).convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR)
    marked = wm.embed(image, payload, SECRET)
    assert psnr(image, marked) >= 40.0
    result = wm.detect(GEOMETRIC_ATTACKS["width1080"](marked), SECRET)
    assert result.found and result.payload == payload and result.geometry == "frame"


@pytest.mark.parametrize("side", [128, 150, 180])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera"])
def test_small_images_carry_a_readable_mark(name, side, payload):
    """The smallest images embed accepts: with 2 x 2 tiles, as before, astronaut's mark was not read back."""
    image = skimage_image(name)
    scale = side / min(image.size)
    small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    assert wm.detect(wm.embed(small, payload, SECRET), SECRET).payload == payload


def test_tiles_follow_the_frame(marked, payload):
    assert wm.frame_tiles(400, 600) == (4, 6) and wm.frame_tiles(3000, 4000) == (10, 13)
    assert wm.frame_tiles(256, 256) == (4, 4) and wm.frame_tiles(200, 150) == (4, 3)
    assert wm.frame_tiles(128, 128) == (3, 3)  # 2 x 2 tiles held too little of the mark (see below)
    photo = marked["CA.jpg"]  # 1024x683: 6 x 10 tiles
    result = wm.detect(photo.resize((photo.width // 3, photo.height // 2), Image.Resampling.BILINEAR), SECRET)
    assert result.found and result.payload == payload and result.geometry == "frame"


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P"])
def test_image_modes(mode, payload):
    image = skimage_image("coffee").convert(mode)
    marked = wm.embed(image, payload, SECRET)
    assert marked.mode == {"P": "RGB"}.get(mode, mode)
    if mode in ("RGBA", "LA"):
        assert marked.getchannel("A").tobytes() == image.getchannel("A").tobytes()
    assert wm.detect(marked, SECRET).payload == payload


def test_too_small_image_is_refused(payload):
    with pytest.raises(InputError, match="too small"):
        wm.embed(Image.new("RGB", (20, 400)), payload, SECRET)
    assert not wm.detect(Image.new("RGB", (20, 20)), SECRET).found


def test_short_secret_is_refused(payload):
    with pytest.raises(KeysError, match="at least 16 bytes"):
        wm.embed(skimage_image("coffee"), payload, b"short")


def test_lattice_score_wraps_a_frequency_that_rounds_to_the_spectrum_edge():
    """A tiny negative vertical frequency wraps (np.mod in float32) to exactly the spectrum's height: the search
    read one row past the end and crashed on some real photos."""
    import numpy as np

    from guard.watermark.image import _lattice_score

    h = 276
    power = np.ones((h, 139), dtype=np.float32)
    bases = np.array([[[10.0, 0.0], [0.0, 10.0]]])
    points = np.array([[1.0, -1e-9]] * 4, dtype=np.float32)
    score = _lattice_score(power, 276, bases, points)
    assert score.shape == (1,) and np.isfinite(score).all()


def _lattice_score_reference(power, width, bases, points, nearest):
    """The lattice score written plainly, one basis at a time, in float64."""
    h = power.shape[0]
    scores = []
    for basis in bases:
        w = points.astype(np.float64) @ np.linalg.inv(basis)  # rows: (x, y) frequency of each point
        w[w[:, 0] < 0] *= -1  # the spectrum holds the half-plane of non-negative x frequencies
        w = w[(w[:, 0] < 0.42) & (np.abs(w[:, 1]) < 0.42)]
        fx, fy = w[:, 0] * width, np.mod(w[:, 1] * h, h)
        if nearest:
            values = power[np.rint(fy).astype(int) % h, np.rint(fx).astype(int)]
        else:
            x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
            ax, ay = fx - x0, fy - y0
            top = (1 - ax) * power[y0 % h, x0] + ax * power[y0 % h, x0 + 1]
            bottom = (1 - ax) * power[(y0 + 1) % h, x0] + ax * power[(y0 + 1) % h, x0 + 1]
            values = (1 - ay) * top + ay * bottom
        scores.append(values.mean() if len(values) >= 0.3 * len(points) else 0.0)
    return np.array(scores)


@pytest.mark.parametrize("nearest", [False, True])
def test_lattice_score_matches_a_plain_reading_of_the_spectrum(nearest):
    """The chunked, flat-indexed lattice score reads the same bins as a plain one: mirrored points, rows that
    wrap, points off the spectrum, bases split across chunks."""
    rng = np.random.default_rng(5)
    h, width = 300, 400
    rows, cols = np.mgrid[0:h, 0 : width // 2 + 2]
    # Nearest-bin reads may round differently in float32 at exact half bins: a smooth spectrum keeps that tiny.
    power = (np.sin(rows / 9.0) + np.cos(cols / 7.0) + 3.0 if nearest else rng.random(rows.shape) + 0.5)
    power = power.astype(np.float32)
    params = np.stack([rng.uniform(np.log(12), np.log(200), 400), rng.uniform(-0.4, 0.4, 400),
                       rng.uniform(-0.2, 0.2, 400)], axis=1)
    bases = wm._bases(params)
    points = wm._lattice_points(wm.BAND[1])
    assert len(bases) * len(points) > 2 * wm._SCORE_CHUNK
    expected = _lattice_score_reference(power, width, bases, points, nearest)
    got = wm._lattice_score(power, width, bases, points, nearest=nearest)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_allclose(got, expected, rtol=1e-4 if nearest else 1e-5)
