"""A robust, keyed, invisible image watermark that carries a key id and a provenance record id.

Design (``SCHEME``), in the order the embedder applies it:

1. **Payload**: 16-bit key id + 64-bit record id + 40-bit HMAC tag = 120 bits, convolutionally coded to 378 bits
   (``image_coding``: soft-decision Viterbi; the tag is the integrity check).
2. **Pattern**: a 64x64 tile whose 2-D DFT is non-zero only in a ring (radius 3.5..18 cycles per tile). Each real
   degree of freedom (the real or imaginary part of one coefficient) carries either a *pilot* value (20 %, used
   to find the tile's position) or one coded bit times a sign; which is which, the signs and the pilot are
   drawn from the secret, so the mark can be neither read nor located without it.
   **Template** (new in v3): 15 % of the residual's power goes to 12 keyed frequencies just outside the ring
   (18.6..21 cycles per tile), each with a keyed phase. The payload's power is spread over ~480 frequencies,
   too thin to see in the spectrum of a busy photo; the template's is concentrated on 12, so its lattice
   stands out and reveals the tile's size, aspect and rotation after a crop or a rotation. It lies outside
   the ring, so v2 readers and the payload's soft values do not see it.
3. **Frame-relative tiling**: the image holds a whole number of tiles on each side, ``frame_tiles``: about one
   tile per ``PERIOD`` pixels of the short side, 3 in images of 128 to 255 pixels, 4 in 256 to 499, at most 10.
   The tile is therefore tied to the image's frame, not to its pixels: any rescale of the whole image,
   keeping its aspect ratio or not, leaves the same number of tiles on each side, so the detector finds it
   without a search. The mark's frequencies (at most 0.18 cycles per pixel at 100 pixels a tile; 0.21 for
   the template) are low enough to survive a downscale to 0.3x.
4. **Informed embedding**: the image is the detector's largest noise source, and the embedder sees it, so it
   runs the detector's front end on the image and, for each coded bit the image's content pushes the wrong
   way, boosts that bit's amplitude to cancel it (bounded; the residual is then rescaled to the same RMS).
   The residual is built on the working grid (64 pixels a tile), resized to the image and added to R, G and B
   alike (a pure luma change).
   **Flat regions spared** (``flat_level``, default 16): where the local contrast is low (a clear sky) the
   residual is scaled down, to ``sqrt(2 s² + C2) / flat_level`` of its level, and the textured rest raised by up
   to 1.6x to keep the RMS: the mark no longer shows as a mottle on a sky and SSIM reaches 0.98, at a measured
   cost in robustness to WebP (``_envelope``). The detector does not need to know.
5. **Detection** tries geometries, each a map from the tile to the image's pixels, and reads each the same
   way: the luma is resampled onto the tile grid, high-passed and divided by its local power to the 2/3 (a
   brightness or contrast change does nothing, textured regions do not drown the mark), all tiles are summed
   into one ("folding": any crop offset becomes a cyclic shift), a cross-correlation with the keyed pilot
   finds the shift, and the aligned coefficients, weighted by the image's own power at their frequency (its
   level in their ring, adjusted by the tiles' mean periodogram: texture is not the same in every direction)
   and by how much of the mark the ring still holds (a low-pass fitted to the pilot), give one soft value per
   coded bit for the Viterbi decoder. The informed embedder weighs the image's interference the same way.
   The geometries: first the frame's own tilings (an untouched, re-encoded or rescaled image) and the same
   turned by small angles (a rotation, with the canvas kept or expanded, perhaps rescaled after); then, if none
   decodes, the best of a search over tile size, aspect and rotation (a crop, a screenshot): the tiled pattern
   puts its energy on a lattice in the image's spectrum, whatever the translation, so each candidate is scored
   by the whitened spectral power at its points (cheap, no resampling), once on the payload ring's lattice and
   once on the template's 12 points, and the best few by each score are refined and read; the template is
   searched a second time without rotation (crops, screenshots and rescales keep the image upright), where fewer
   chance peaks compete and the refined tile is not tilted by noise. Frame tilings are ranked by the same two scores,
   turned ones by the template's; a thumbnail (at most ``SMALL_FRAME_SIDE`` pixels on its short side) reads
   every tiling that keeps its aspect ratio, since its template lies above the Nyquist frequency. A v2 mark
   (no template) is read as before: by its frame and its ring's lattice.

Decision rule: ``found`` only if the decoded tag matches. At most ``MAX_ATTEMPTS`` messages are checked per
image (the most likely messages of at most 52 candidates, each stage's highest pilot peaks, and 7 more each for
the 4 best candidates of each stage when those fail: see ``detect_many``) and each matches by chance with
probability 2**-40 on an image that holds no mark for this secret, so the false-alarm probability is at most
``FALSE_ALARM_BOUND`` = 108 * 2**-40 ≈ 9.8e-11, whatever the image.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InputError, KeysError
from guard.watermark import image_coding as coding

if TYPE_CHECKING:
    from PIL import Image

SCHEME = "genguard-dft-ring/v3"
TILE = 64  # working pixels a tile
BAND = (3.5, 18.0)  # ring of the tile's DFT, in cycles per tile
PERIOD = 100  # about one tile per this many pixels of the short side ...
MIN_TILES, MAX_TILES = 2, 10  # ... but at least 2 (a 50 % crop keeps a whole tile) and at most 10
SMALL_TILE = 64  # pixels a tile in small images (see ``_tiles_for``)
MIN_SIDE = 128  # shortest side that can carry the mark (a tile is then 64 pixels: one working pixel a pixel)
PILOT_FRACTION = 0.2
BASE_RMS = 2.4  # residual RMS (8-bit levels) at strength 1: PSNR ≈ 40.5 dB
TEMPLATE_BAND = (18.6, 21.0)  # the template's frequencies, just outside the ring, in cycles per tile
TEMPLATE_POINTS = 12
TEMPLATE_SHARE = 0.15  # of the residual's power
PEAKS_PER_GEOMETRY = 2
FRAME_GEOMETRIES = 6  # frame tilings read per image: its own, and 5 more by each spectral score
SEARCH_GEOMETRIES = 4  # searched geometries read per image, by each of the three searches (see ``_search``)
TURNED_GEOMETRIES = 3  # the frame tilings turned by a small angle, read per image (see ``_turned_frames``)
LIST_CANDIDATES, LIST_SIZE = 4, 8  # per image and stage, the candidates list-decoded, and how many messages each
LIST_MIN_Z = 3.8  # ... among those whose pilot peak stands at least this high (see ``detect_many``)
SMALL_FRAME_SIDE = 256  # images up to this short side read every frame tiling that keeps their aspect ratio ...
SMALL_FRAME_TILES = 48  # ... and has at most this many tiles (6 x 8: a panorama's would cost a second or more)
# Messages checked against the tag per image, at most: the candidates (pilot peaks) decoded in the first pass (frame
# tilings, turned frames) and in the search, each stage's highest, and the list decoding's runners-up.
FRAME_CANDIDATES = PEAKS_PER_GEOMETRY * (2 * FRAME_GEOMETRIES - 1 + TURNED_GEOMETRIES)
SEARCH_CANDIDATES = PEAKS_PER_GEOMETRY * 3 * SEARCH_GEOMETRIES
MAX_ATTEMPTS = FRAME_CANDIDATES + SEARCH_CANDIDATES + 2 * LIST_CANDIDATES * (LIST_SIZE - 1)
FALSE_ALARM_BOUND = MAX_ATTEMPTS * 2.0**-coding.TAG_BITS
MAX_ROTATION = 6.0  # degrees searched either way
_TURN_STEP = 0.25  # degrees between the turned frames scored (see ``_turned_frames``)
_MAX_ASPECT_CHANGE = 2.0  # a rescale may stretch one side by up to this factor more than the other
_HIGHPASS_SIGMA = 4.0  # working pixels
_CONTRAST_BOX = 25  # local contrast window (a box filter: constant cost per pixel)
_CONTRAST_POWER, _CONTRAST_FLOOR = 2 / 3, 1.0  # divisor (local power + floor) ** power (see ``_normalise``)
_LOWPASS_RADII = (6.0, 8.0, 10.0, 12.5, 15.0, 18.0, 22.0, 30.0, 1e9)  # cycles per tile (see ``_ring_gain``)
_NOISE_TILES = 16  # tiles whose periodograms estimate the noise per frequency (see ``_weights``)
_NOISE_SHRINK = 0.5  # ... and the power of its ratio to the ring's level that the weights follow
FLAT_LEVEL = 16.0  # default ``flat_level`` (8-bit levels): SSIM 0.98 on photos (docs/watermark.md)
FLAT_LIFT = 1.6  # with ``flat_level``, the most the textured rest is raised to make up for flat regions
_MASK_BOX = 5  # working pixels: about SSIM's 7-pixel window
_SSIM_C2 = (0.03 * 255) ** 2
_MAX_BOOST = 3.0  # informed embedding: at most this many times the base amplitude on one degree of freedom
_MARGIN = 1.5  # ... to give every coded bit at least this many times its clean response
_WHITEN_BOX = 9  # spectral bins: the local mean the analysis spectrum is whitened by (see ``_observe``)
_ANALYSIS_SIDE = 400  # the spectrum searched for lattices is of an image at most this short side
_MAX_WORKING_AREA = 1280 * 720  # a geometry is read from at most this many working pixels (the centre)
_SCORE_CHUNK = 1 << 15  # lattice points scored at a time (see ``_lattice_score``)
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class WatermarkPayload:
    """What the mark carries: a 16-bit key id (4 hex digits) and a 64-bit record id (16 hex digits)."""

    key_id: str
    record_id: str

    def __post_init__(self) -> None:
        for name, digits in (("key_id", coding.KEY_ID_BITS // 4), ("record_id", coding.RECORD_ID_BITS // 4)):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) != digits or not _HEX.fullmatch(value):
                raise ValueError(f"{name} must be {digits} lowercase hex digits, got {value!r}")

    @classmethod
    def for_record(cls, record_id: str, key_id: str) -> WatermarkPayload:
        """The payload for a record, keeping the first 4 hex digits of a longer key id (``KeyStore`` gives 8)."""
        return cls(key_id=key_id.lower()[: coding.KEY_ID_BITS // 4], record_id=record_id.lower())

    def matches_key(self, key_id: str) -> bool:
        """Whether a full key id (e.g. ``KeyStore.watermark_key_id()``) is the one this payload names."""
        return key_id.lower().startswith(self.key_id)

    def to_bytes(self) -> bytes:
        return bytes.fromhex(self.key_id + self.record_id)

    @classmethod
    def from_bytes(cls, data: bytes) -> WatermarkPayload:
        split = coding.KEY_ID_BITS // 8
        return cls(key_id=data[:split].hex(), record_id=data[split:].hex())

    def to_bits(self) -> np.ndarray:
        """The 80 payload bits (0/1, most significant first), key id then record id."""
        return np.unpackbits(np.frombuffer(self.to_bytes(), dtype=np.uint8))

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> WatermarkPayload:
        return cls.from_bytes(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes())

    def to_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "record_id": self.record_id}



@dataclass(frozen=True)
class ImageWatermarkResult:
    """The outcome of ``detect``.

    ``confidence`` is the decoding margin, 1 - 2 * (coded-bit error rate), clipped to [0, 1]: near 1.0 for an
    untouched image, falling toward 0 as an attack nears what the code can correct (0 when nothing was found).
    ``false_alarm_probability`` bounds the chance that an image without this secret's mark is reported found.
    ``tile_size`` (pixels, width and height) and ``rotation`` (degrees, counter-clockwise) describe the geometry
    the mark was read at; ``geometry`` says how it was found: ``frame`` (the image's own frame: untouched or
    rescaled), ``turned`` (a frame at a small angle: rotated, then perhaps rescaled) or ``search`` (cropped or
    otherwise moved).
    """

    found: bool
    payload: WatermarkPayload | None
    bit_errors_corrected: int | None
    coded_bits: int
    confidence: float
    false_alarm_probability: float
    sync_z: float  # height of the best pilot correlation peak in robust standard deviations
    geometry: str | None = None
    tile_size: tuple[float, float] | None = None
    rotation: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "found": self.found,
            "payload": self.payload.to_dict() if self.payload else None,
            "key_id": self.payload.key_id if self.payload else None,
            "record_id": self.payload.record_id if self.payload else None,
            "bit_errors_corrected": self.bit_errors_corrected,
            "coded_bits": self.coded_bits,
            "confidence": round(self.confidence, 4),
            "false_alarm_probability": self.false_alarm_probability,
            "sync_z": round(self.sync_z, 2),
            "geometry": self.geometry,
            "tile_size": [round(v, 2) for v in self.tile_size] if self.tile_size else None,
            "rotation": round(self.rotation, 2) if self.rotation is not None else None,
        }


@dataclass(frozen=True)
class _Layout:
    """The secret-dependent layout of the tile's spectrum (see the module docstring)."""

    rows: np.ndarray  # DFT indices of the ring's half-plane coefficients
    cols: np.ndarray
    freq_rows: np.ndarray  # the same as signed frequencies, for sub-pixel phase ramps
    freq_cols: np.ndarray
    ring: np.ndarray  # integer radius of each degree of freedom (2 per coefficient: real, imaginary)
    pilot: np.ndarray  # pilot value per degree of freedom, 0 where it carries a bit
    bit: np.ndarray  # coded bit per degree of freedom, -1 where it is pilot
    sign: np.ndarray  # spreading sign per degree of freedom
    mac_key: bytes
    template: np.ndarray  # the template's frequencies (x, y) in cycles per tile, half-plane
    template_phase: np.ndarray
    lowpass: np.ndarray  # exp(-(ring / r0)²) for each r0 of ``_LOWPASS_RADII`` (rows; see ``_ring_gain``)


def _derive(secret: bytes, label: bytes) -> bytes:
    """Keyed material for one use; the "v2" context stays in v3, whose ring, pilot and tag are v2's."""
    return hmac.new(secret, b"genguard image watermark v2 " + label, hashlib.sha256).digest()


def _ring_mask() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed row and column frequencies of the tile's DFT, and the ring's half-plane mask."""
    freqs = np.fft.fftfreq(TILE, d=1.0 / TILE)
    fr, fc = np.meshgrid(freqs, freqs, indexing="ij")
    radius = np.hypot(fr, fc)
    half = (fc > 0) | ((fc == 0) & (fr > 0))
    return fr, fc, (radius >= BAND[0]) & (radius <= BAND[1]) & half


@lru_cache(maxsize=8)
def _layout(secret: bytes) -> _Layout:
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise KeysError("the watermark secret must be at least 16 bytes (guard keys init makes 32)")
    fr, fc, ring = _ring_mask()
    rows, cols = np.nonzero(ring)
    dofs = 2 * rows.size
    rng = np.random.default_rng(np.frombuffer(_derive(secret, b"layout"), dtype=np.uint64))
    order = rng.permutation(dofs)
    n_pilot = int(round(PILOT_FRACTION * dofs))
    pilot = np.zeros(dofs)
    pilot[order[:n_pilot]] = rng.choice([-1.0, 1.0], size=n_pilot)
    bit = np.full(dofs, -1)
    bit[order[n_pilot:]] = np.arange(dofs - n_pilot) % coding.CODED_BITS
    dof_ring = np.repeat(np.rint(np.hypot(fr, fc)[rows, cols]).astype(int), 2)
    return _Layout(
        rows=rows,
        cols=cols,
        freq_rows=fr[rows, cols],
        freq_cols=fc[rows, cols],
        ring=dof_ring,
        pilot=pilot,
        bit=bit,
        sign=rng.choice([-1.0, 1.0], size=dofs),
        mac_key=_derive(secret, b"tag"),
        lowpass=np.exp(-((dof_ring[None, :] / np.array(_LOWPASS_RADII)[:, None]) ** 2)),
        **_template_layout(secret, fr, fc),
    )


def _template_layout(secret: bytes, fr: np.ndarray, fc: np.ndarray) -> dict[str, np.ndarray]:
    """``TEMPLATE_POINTS`` keyed frequencies just outside the payload's ring, each with a keyed phase."""
    radius = np.hypot(fr, fc)
    half = (fc > 0) | ((fc == 0) & (fr > 0))
    rows, cols = np.nonzero((radius >= TEMPLATE_BAND[0]) & (radius <= TEMPLATE_BAND[1]) & half)
    rng = np.random.default_rng(np.frombuffer(_derive(secret, b"template"), dtype=np.uint64))
    pick = rng.permutation(rows.size)[:TEMPLATE_POINTS]
    rows, cols = rows[pick], cols[pick]
    return {"template": np.stack([fc[rows, cols], fr[rows, cols]], axis=1).astype(np.float32),
            "template_phase": rng.uniform(0, 2 * np.pi, size=pick.size)}


def _template_tile(layout: _Layout) -> np.ndarray:
    """The template alone: a sum of ``TEMPLATE_POINTS`` plane waves on the tile's grid."""
    spectrum = np.zeros((TILE, TILE), dtype=np.complex128)
    kx, ky = layout.template[:, 0].astype(int), layout.template[:, 1].astype(int)
    coef = np.exp(1j * layout.template_phase)
    spectrum[ky % TILE, kx % TILE] = coef
    spectrum[-ky % TILE, -kx % TILE] = np.conj(coef)
    return np.fft.ifft2(spectrum).real.astype(np.float32)


def _spectrum(layout: _Layout, dof_values: np.ndarray) -> np.ndarray:
    """A Hermitian-symmetric TILE x TILE spectrum from the real degrees of freedom."""
    coef = dof_values[0::2] + 1j * dof_values[1::2]
    spectrum = np.zeros((TILE, TILE), dtype=np.complex128)
    spectrum[layout.rows, layout.cols] = coef
    spectrum[-layout.rows % TILE, -layout.cols % TILE] = np.conj(coef)
    return spectrum


def _carrier_values(layout: _Layout, message: bytes) -> np.ndarray:
    """The ±1 target of every degree of freedom: the pilot, or a coded bit times its spreading sign."""
    coded = coding.encode(coding.frame(layout.mac_key, message))
    values = layout.pilot.copy()
    carriers = layout.bit >= 0
    values[carriers] = layout.sign[carriers] * (1.0 - 2.0 * coded[layout.bit[carriers]])
    return values


def _tile(layout: _Layout, dof_values: np.ndarray) -> np.ndarray:
    return np.fft.ifft2(_spectrum(layout, dof_values)).real.astype(np.float32)


def _tiles_for(side: int) -> int:
    """One tile per ``PERIOD`` pixels, but tiles of at most ``SMALL_TILE`` pixels up to 4 tiles a side, and at
    least 3 tiles in an image that can carry the mark: below about 400 pixels two or three large tiles put the
    mark where the image's own content drowns it, and with 2 x 2 tiles (a short side of 128 to 191 pixels) the
    untouched mark was read in only 12 of 25 photos (3 x 3: 24)."""
    small = min(4, max(3, side // SMALL_TILE)) if side >= MIN_SIDE else MIN_TILES
    return min(MAX_TILES, max(MIN_TILES, side // PERIOD, small))


def frame_tiles(height: int, width: int) -> tuple[int, int]:
    """Tiles (down, across) the embedder lays on an image of this size: about one per ``PERIOD`` pixels of the
    short side (2 to 10), and on the long side the whole number that keeps the tile closest to square."""
    short, long = sorted((height, width))
    across_short = _tiles_for(short)
    across_long = max(across_short, round(long * across_short / short))
    return (across_short, across_long) if height <= width else (across_long, across_short)


def embed(image: Image.Image, payload: WatermarkPayload, secret: bytes, strength: float = 1.0,
          flat_level: float = FLAT_LEVEL) -> Image.Image:
    """Return a copy of ``image`` carrying ``payload``, readable only with ``secret``.

    ``strength`` scales the residual (1.0: RMS 2.4 levels, PSNR ≈ 40.5 dB); the mode (L, LA, RGB, RGBA) is kept,
    grey modes come back as L, others as RGB. ``flat_level`` (8-bit levels of local contrast; 0: off) spares flat
    regions, where the mark can show as a faint mottle on a clear sky: see ``_envelope``. Raises ``InputError``
    for an image too small to carry the mark.
    """
    import cv2
    from PIL import Image

    if strength <= 0:
        raise ValueError(f"strength must be positive, got {strength}")
    if flat_level < 0:
        raise ValueError(f"flat_level must be 0 (off) or positive, got {flat_level}")
    layout = _layout(secret)
    pixels, alpha = _pixels(image)
    height, width = pixels.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InputError(f"image is {width}x{height}: too small to carry the watermark "
                         f"(the short side needs at least {MIN_SIDE} pixels)")
    down, across = frame_tiles(height, width)
    # Resize the 8-bit pixels, then take the luma: the same up to rounding, and at 4K it spares converting
    # 25 M values to float.
    working = _luma(cv2.resize(pixels, (TILE * across, TILE * down), interpolation=cv2.INTER_AREA))
    target = _carrier_values(layout, payload.to_bytes())
    envelope = _envelope(working, flat_level) if flat_level else None
    values = _informed_values(layout, target, working, strength * math.sqrt(1.0 - TEMPLATE_SHARE), envelope)
    tile = _tile(layout, values)
    tile *= math.sqrt(1.0 - TEMPLATE_SHARE) / tile.std()
    if TEMPLATE_SHARE:
        template = _template_tile(layout)
        tile += template * (math.sqrt(TEMPLATE_SHARE) / template.std())
    tiled = np.tile(tile, (down, across))
    rms = BASE_RMS * strength
    if envelope is not None:
        tiled *= envelope
        rms *= float(np.sqrt(np.mean(envelope * envelope)))
    residual = cv2.resize(tiled, (width, height), interpolation=cv2.INTER_CUBIC)
    step = max(1, min(height, width) // 512)  # the RMS from a subsample: the residual is smooth at this step
    residual *= rms / float(residual[::step, ::step].std())
    # Integer pixels plus the rounded residual are the rounded sum; 16-bit halves the memory traffic at 4K.
    residual = np.rint(residual, out=residual).astype(np.int16)
    if pixels.ndim == 3:
        residual = cv2.merge([residual, residual, residual])  # the same offset on R, G, B: a pure luma change
    marked = cv2.add(pixels, residual, dtype=cv2.CV_8U)  # rounds and saturates in one multithreaded pass
    out = Image.fromarray(marked, "L" if marked.ndim == 2 else "RGB")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _envelope(working: np.ndarray, flat_level: float) -> np.ndarray:
    """The residual's relative local amplitude on the working grid: less where the image is flat (local contrast
    below ``flat_level``), and the textured rest raised by up to ``FLAT_LIFT`` to keep the residual's RMS.

    A residual of local RMS ``m`` on content of local standard deviation ``s`` costs SSIM about
    ``m² / (2 s² + C2)`` (C2 = (0.03 * 255)², SSIM's own constant), and it shows where ``s`` is small: a clear
    sky. The amplitude follows ``sqrt(2 s² + C2) / flat_level``, capped at 1. The price is robustness where the
    mark survived best: a flat region keeps the mark through re-encoding that smooths texture (WebP), so a
    mostly flat image loses most (docs/watermark.md has the measured trade).
    """
    import cv2

    box = (_MASK_BOX, _MASK_BOX)
    mean = cv2.blur(working, box)
    variance = np.maximum(cv2.blur(working * working, box) - mean * mean, 0.0)
    envelope = np.minimum(1.0, np.sqrt(2.0 * variance + _SSIM_C2) / flat_level).astype(np.float32)
    textured = envelope >= 1.0
    share = float(np.mean(textured))
    if share > 0:  # raise only the textured part, so that the whole keeps its RMS if it can
        flat_power = float(np.sum(np.where(textured, 0.0, envelope * envelope))) / envelope.size
        envelope[textured] = min(FLAT_LIFT, math.sqrt((1.0 - flat_power) / share))
    return envelope


def _informed_values(layout: _Layout, target: np.ndarray, working: np.ndarray, strength: float,
                     envelope: np.ndarray | None = None) -> np.ndarray:
    """Degree-of-freedom amplitudes that cancel the image's own interference with the mark.

    The image itself is the largest noise the detector faces: its content projects onto every degree of
    freedom, and where that projection has the wrong sign it erases the mark before any attack. The embedder
    sees the image, so it runs the detector's own front end on it (``working``: the luma on the working grid)
    and adds, where the image opposes the target, just enough to cancel it (at most ``_MAX_BOOST`` times the
    base amplitude; the total residual is then rescaled to the same RMS, so PSNR is unchanged).
    """
    detail, denominator = _normalise(working)
    tiles = _tiles(detail)
    host_coefficients = _fold_fft(tiles)[layout.rows, layout.cols]
    host = _dof_values(layout, host_coefficients)
    plain = _tile(layout, target)
    tiled = np.tile(plain, (working.shape[0] // TILE, working.shape[1] // TILE))
    if envelope is not None:
        tiled *= envelope
    response = _dof_values(layout, _fold_fft(_tiles(_highpass(tiled) / denominator))[layout.rows, layout.cols])
    gain = np.maximum(_ring_mean(layout, response * target), 1e-9)
    weight = _weights(layout, tiles, host_coefficients)
    carriers = layout.bit >= 0
    bits = layout.bit[carriers]
    bit_gain = np.bincount(bits, weights=(weight * gain)[carriers], minlength=coding.CODED_BITS)
    bit_host = np.bincount(bits, weights=(weight * target * host)[carriers], minlength=coding.CODED_BITS)
    values = target
    for _ in range(2):
        amplitude = BASE_RMS * strength / float(_tile(layout, values).std())
        boost = np.empty_like(target)
        boost[~carriers] = np.maximum(0.0, -target * host)[~carriers] / (amplitude * gain[~carriers])
        boost[carriers] = np.maximum(0.0, _MARGIN - 1.0 - bit_host / (amplitude * bit_gain))[bits]
        values = target * (1.0 + np.minimum(_MAX_BOOST, boost))
    return values


def _pixels(image: Image.Image) -> tuple[np.ndarray, Image.Image | None]:
    """8-bit pixels (H x W for grey, H x W x 3 for colour) and the alpha band, if any."""
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    if image.mode in ("L", "LA", "1", "I", "I;16", "F"):
        base = image if image.mode == "L" else image.convert("L")
    else:
        base = image if image.mode == "RGB" else image.convert("RGB")
    return np.asarray(base), alpha


def _luma(pixels: np.ndarray) -> np.ndarray:
    """Float luma (BT.601 weights)."""
    luma = pixels.astype(np.float32)
    return luma @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if luma.ndim == 3 else luma


def _highpass(luma: np.ndarray) -> np.ndarray:
    import cv2

    low = cv2.GaussianBlur(luma, (0, 0), _HIGHPASS_SIGMA)
    return np.subtract(luma, low, out=low)


def _normalise(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """High-pass and divide by a power of the local contrast; returns the result and the divisor (the
    detector's front end)."""
    import cv2

    detail = _highpass(luma)
    local_power = cv2.blur(detail * detail, (_CONTRAST_BOX, _CONTRAST_BOX))  # running sums: may dip below 0
    # Inverse-variance weighting is the matched filter for a mark of even strength in noise of varying power
    # (the image's texture); dividing by the local RMS (the power 1/2) under-weights flat regions, the full
    # power 1 over-weights the few flattest ones, where re-encoding noise rather than texture dominates (with
    # the per-frequency weights of ``_weights``, 2/3 did best of 0.5 to 0.9: docs/watermark.md).
    # (In place: each new array of this size costs as much as the arithmetic on it.)
    denominator = np.maximum(local_power, 0.0, out=local_power)
    denominator += _CONTRAST_FLOOR
    np.power(denominator, _CONTRAST_POWER, out=denominator)
    return np.divide(detail, denominator, out=detail), denominator


def _tiles(detail: np.ndarray) -> np.ndarray:
    """The detail cut into TILE x TILE tiles, ``(down, TILE, across, TILE)``, zero-padding the last ones."""
    h, w = detail.shape
    padded = detail.astype(np.float32, copy=False)
    if h % TILE or w % TILE:  # a frame geometry's working grid needs none
        padded = np.zeros((-(-h // TILE) * TILE, -(-w // TILE) * TILE), dtype=np.float32)
        padded[:h, :w] = detail
    return padded.reshape(padded.shape[0] // TILE, TILE, padded.shape[1] // TILE, TILE)


def _fold_fft(tiles: np.ndarray) -> np.ndarray:
    """The DFT of the sum of all tiles (the half with non-negative column frequencies, which holds every
    coefficient of the layout)."""
    return np.fft.rfft2(tiles.sum(axis=(0, 2)))


def _ring_mean(layout: _Layout, values: np.ndarray) -> np.ndarray:
    """Per degree of freedom, the mean of ``values`` over its integer-radius ring."""
    return (np.bincount(layout.ring, weights=values) / np.maximum(np.bincount(layout.ring), 1))[layout.ring]


def _weights(layout: _Layout, tiles: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Per degree of freedom, the inverse of the noise the image puts on it: the detector's (and the informed
    embedder's) weights.

    The folded coefficient's noise is the image's own content at that frequency. Its level per ring (the mean
    square of the ring's coefficients) assumes the content is the same in every direction and at every
    frequency of the ring; texture is not: a window screen, organ pipes, strings or grass blades put their power
    at a few frequencies and orientations, and those coefficients then outvote the rest. The spectrum of the
    individual tiles (Welch's estimate: the mean periodogram of up to ``_NOISE_TILES`` of them, spread over the
    image) shows where. It is shrunk toward the ring's level (its ratio to the ring's mean taken to the power
    ``_NOISE_SHRINK``): a few periodograms give a noisy estimate that also holds the mark itself. Measured on 37
    photos x 11 attacks (docs/watermark.md): 325 exact payloads found with the ring's level alone, 337 with the
    square root, 333 with the full ratio (powers 0.35 to 0.7 all gave 337-339: the middle is kept).
    """
    import scipy.fft  # several times faster than numpy's on these small batched transforms (0.16 against 0.9 ms)

    ring_level = _ring_mean(layout, _dof_values(layout, coefficients) ** 2) + 1e-12
    down, _, across, _ = tiles.shape
    picked = np.linspace(0, down * across - 1, min(_NOISE_TILES, down * across)).round().astype(int)
    rows, cols = np.divmod(picked, across)
    spectra = scipy.fft.rfft2(tiles[rows, :, cols, :])[:, layout.rows, layout.cols]
    power = np.repeat(np.mean(spectra.real**2 + spectra.imag**2, axis=0, dtype=np.float64), 2)
    relative = (power + 1e-12) / (_ring_mean(layout, power) + 1e-12)
    return 1.0 / (ring_level * relative**_NOISE_SHRINK)


def _dof_values(layout: _Layout, coef: np.ndarray) -> np.ndarray:
    values = np.empty(2 * coef.size)
    values[0::2], values[1::2] = coef.real, coef.imag
    return values


def _peaks(corr: np.ndarray, count: int) -> list[tuple[float, float, float]]:
    """The ``count`` highest cyclic peaks as (row, col, z) with parabolic sub-pixel refinement."""
    centre, spread = float(corr.mean()), float(corr.std()) + 1e-12
    work = corr.copy()
    found = []
    for _ in range(count):
        r, c = np.unravel_index(int(np.argmax(work)), work.shape)
        z = float((corr[r, c] - centre) / spread)
        offsets = []
        for line, i in ((corr[:, c], r), (corr[r, :], c)):
            left, mid, right = line[(i - 1) % TILE], line[i], line[(i + 1) % TILE]
            denom = left - 2 * mid + right
            offsets.append(i + (0.5 * (left - right) / denom if denom < 0 else 0.0))
        found.append((offsets[0], offsets[1], z))
        rr = np.arange(r - 2, r + 3) % TILE
        cc = np.arange(c - 2, c + 3) % TILE
        work[np.ix_(rr, cc)] = -np.inf
    return found


def _ring_gain(layout: _Layout, aligned: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per degree of freedom, the share of the mark its ring still holds: the matched filter's weight.

    Attacks do not remove the mark evenly: a downscale, JPEG, WebP or blur erase the outer rings first, as a
    low-pass filter does. Weighting each ring by its noise alone lets those rings vote as loudly as the intact
    inner ones. The detector models the loss as a Gaussian low-pass ``exp(-(r / r0)²)`` and takes the ``r0``
    under which the pilot correlates best (one parameter estimated from ~190 pilot values: too few to
    estimate each ring's gain on its own without adding noise to an untouched image).
    """
    pilots = layout.pilot != 0
    candidates = layout.lowpass[:, pilots]
    scores = (candidates @ (aligned * layout.pilot * weight)[pilots]) / np.sqrt((candidates**2) @ weight[pilots])
    return layout.lowpass[int(np.argmax(scores))]


def _read(layout: _Layout, detail: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(pilot peak z, soft coded bits) for the best alignments of the folded working image."""
    tiles = _tiles(detail)
    spectrum = _fold_fft(tiles)
    coefficients = spectrum[layout.rows, layout.cols]
    weight = _weights(layout, tiles, coefficients)
    pilot = _spectrum(layout, layout.pilot * weight)[:, : TILE // 2 + 1]
    corr = np.fft.irfft2(spectrum * np.conj(pilot), s=(TILE, TILE))
    carriers = layout.bit >= 0
    found = []
    for row, col, z in _peaks(corr, PEAKS_PER_GEOMETRY):
        phase = np.exp(2j * np.pi * (layout.freq_rows * row + layout.freq_cols * col) / TILE)
        aligned = _dof_values(layout, coefficients * phase)
        values = (aligned * weight * _ring_gain(layout, aligned, weight) * layout.sign)[carriers]
        found.append((z, np.bincount(layout.bit[carriers], weights=values, minlength=coding.CODED_BITS)))
    return found


# -- geometry: where the tiles are in an image that may have been resized, cropped or rotated ------------------


@dataclass(frozen=True)
class _Geometry:
    """A candidate map from the tile to the image: ``basis`` holds the tile's x and y edges (columns) in the
    pixels of ``_Observed.base``. ``tiles`` is the frame tiling (down, across) for a frame geometry."""

    basis: np.ndarray
    kind: str  # "frame", "turned" or "search"
    tiles: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Observed:
    """An image as the detector sees it: its luma at a bounded size, and a whitened power spectrum of it."""

    size: tuple[int, int]  # height, width of the image itself
    base: np.ndarray  # luma, resized (frame to frame) so that a tile keeps at least one pixel a working pixel
    power: np.ndarray  # whitened power spectrum (rfft2 layout, one column more) of the smaller analysis image
    width: int  # the analysis image's width (the rfft2 layout does not tell it)
    blurred: np.ndarray  # the same, smoothed: for the coarse search, which reads the nearest bin
    analysis_scale: tuple[float, float]  # analysis pixels per base pixel (y, x)


def _observe(pixels: np.ndarray) -> _Observed:
    import cv2

    height, width = pixels.shape[:2]
    short = min(height, width)
    f = min(1.0, (TILE * (MAX_TILES + 1)) / short)
    size = (max(1, round(width * f)), max(1, round(height * f)))
    base = _luma(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA) if f < 1 else pixels)
    g = min(1.0, _ANALYSIS_SIDE / min(base.shape))
    small = cv2.resize(base, (max(1, round(base.shape[1] * g)), max(1, round(base.shape[0] * g))),
                       interpolation=cv2.INTER_AREA) if g < 1 else base
    detail = small - cv2.GaussianBlur(small, (0, 0), 12.0)
    detail /= np.sqrt(np.maximum(cv2.blur(detail * detail, (41, 41)), 0.0)) + 0.5
    h, w = detail.shape
    window, radius, counts = _analysis_grid(h, w)
    spectrum = np.fft.rfft2(detail * window)
    power = spectrum.real**2 + spectrum.imag**2
    # Whitened by the geometric mean of the radial profile and the power's own local mean: texture that is not
    # the same in every direction (grass blades, a screen, stripes) raises whole regions of the spectrum, where
    # chance points outscore a true lattice; a box of 9 bins averages a template peak away to 1/81 of itself.
    profile = np.bincount(radius.ravel(), weights=power.ravel()) / counts
    local = cv2.blur(power.astype(np.float32), (_WHITEN_BOX, _WHITEN_BOX), borderType=cv2.BORDER_REFLECT)
    np.maximum(local, 0.0, out=local)  # running sums in single precision can dip below 0
    power = np.minimum(power / (np.sqrt(local * profile[radius]) + 1e-12), 10.0).astype(np.float32)
    power = np.concatenate([power, power[:, -1:]], axis=1)  # one column more: bilinear reads never fall off
    blurred = cv2.GaussianBlur(power, (0, 0), 0.8)
    return _Observed((height, width), base, power, w, blurred, (h / base.shape[0], w / base.shape[1]))


@lru_cache(maxsize=8)
def _analysis_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an analysis image of this size: its window, each rfft2 bin's radial band (in steps of 1/200 cycle
    per pixel, up to 100) and each band's bin count (1 for an empty band). Cached: most images share a few
    sizes."""
    window = np.outer(_tukey(h), _tukey(w)).astype(np.float32)
    radius = np.minimum((np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]) * 200).astype(int), 100)
    counts = np.maximum(np.bincount(radius.ravel()), 1)
    for array in (window, radius, counts):
        array.flags.writeable = False
    return window, radius, counts


def _tukey(n: int, taper: float = 0.1) -> np.ndarray:
    """A window flat in the middle that falls to zero over ``taper`` of each end (keeps most of the image)."""
    x = np.arange(n) / max(n - 1, 1)
    edge = np.minimum(x, 1 - x) / taper
    return np.where(edge >= 1, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.minimum(edge, 1)))


@lru_cache(maxsize=4)
def _lattice_points(max_radius: float) -> np.ndarray:
    """The ring's half-plane frequencies (x, y), in cycles per tile, up to ``max_radius``."""
    fr, fc, ring = _ring_mask()
    keep = ring & (np.hypot(fr, fc) <= max_radius)
    return np.stack([fc[keep], fr[keep]], axis=1).astype(np.float32)


def _lattice_score(power: np.ndarray, width: int, bases: np.ndarray, points: np.ndarray,
                   nearest: bool = False) -> np.ndarray:
    """Mean whitened power at the lattice points each basis (n x 2 x 2, in analysis pixels) puts the tile's
    ring on: a periodic pattern's energy lies on that lattice whatever its translation. ``nearest`` reads the
    nearest bin (for the coarse search, on a dilated spectrum) instead of interpolating.

    The bases are scored in chunks of about ``_SCORE_CHUNK`` points, whose temporaries stay in the CPU's cache,
    and each point is read from the flattened spectrum by one index (a point off the spectrum reads a block of
    zeros): the coarse search scores ~500 points for each of ~1,000 bases per image.
    """
    h, columns = power.shape
    # Rows 0..h+1 (a frequency may wrap to row h, and bilinear reads row + 1), then zeros for invalid points.
    flat = np.concatenate([power.ravel(), power[:2].ravel(), np.zeros(columns + 2, power.dtype)])
    off = (h + 2) * columns
    inv_t = np.linalg.inv(bases).transpose(0, 2, 1).astype(np.float32)  # frequencies = basis^-T k
    kx, ky = points[None, :, 0], points[None, :, 1]
    sums, counts = np.empty(len(bases)), np.empty(len(bases), dtype=np.int64)
    step = max(1, _SCORE_CHUNK // points.shape[0])
    for start in range(0, len(bases), step):
        m = inv_t[start : start + step]
        wx = m[:, 0, 0, None] * kx + m[:, 0, 1, None] * ky
        wy = m[:, 1, 0, None] * kx + m[:, 1, 1, None] * ky
        # The spectrum holds the half-plane of non-negative x frequencies: a point left of it reads its mirror.
        # (Elementwise arithmetic throughout: numpy's ``where=`` arguments and np.mod cost ten times more.)
        wy = np.where(wx < 0, -wy, wy)
        wx = np.abs(wx)
        valid = (wx < 0.42) & (np.abs(wy) < 0.42)
        fx, fy = wx * width, wy * h
        fy += (fy < 0) * np.float32(h)  # np.mod(fy, h) wherever valid (|fy| < h there)
        # Valid points lie below 0.42 cycles a pixel: column x0 + 1 (or the rounded column) stays in the spectrum.
        if nearest:
            values = flat[np.where(valid, (np.rint(fy) * columns + np.rint(fx)).astype(np.intp), off)]
        else:
            x0, y0 = np.floor(fx), np.floor(fy)
            ax, ay = (fx - x0).astype(np.float64), fy - y0
            index = np.where(valid, (y0 * columns + x0).astype(np.intp), off)
            bx = 1 - ax
            top = bx * flat[index]
            top += ax * flat[index + 1]
            bottom = bx * flat[index + columns]
            bottom += ax * flat[index + columns + 1]
            values = (1 - ay) * top + ay * bottom
        sums[start : start + step] = values.sum(axis=1)
        counts[start : start + step] = np.count_nonzero(valid, axis=1)
    return np.where(counts >= 0.3 * points.shape[0], sums / np.maximum(counts, 1), 0.0)


def _rotation(theta: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)


def _tilings(height: int, width: int, low: float = 0.25, high: float = 2.5,
             nearby: bool = False) -> list[tuple[int, int]]:
    """Frame tilings (down, across) an image of this size may carry: its own, then those of any image it may
    have been rescaled from (``low`` to ``high`` times its size, changing its aspect ratio by up to 2x, or,
    if ``nearby``, keeping it), in either orientation."""
    short, long = sorted((height, width))
    own = frame_tiles(height, width)
    found = [own]
    for across_short in range(_tiles_for(int(short / high)), _tiles_for(int(short / low)) + 1):
        nearest = round(long * across_short / short)
        for across_long in range(nearest if nearby else math.ceil(nearest / _MAX_ASPECT_CHANGE),
                                 nearest + 1 if nearby else math.floor(nearest * _MAX_ASPECT_CHANGE) + 1):
            if across_long >= MIN_TILES:
                for tiling in ((across_short, across_long), (across_long, across_short)):
                    if tiling not in found:
                        found.append(tiling)
    return found


def _frame_geometries(obs: _Observed, layout: _Layout) -> list[_Geometry]:
    """The frame tilings worth reading: the image's own, and the others whose lattice or template scores best
    (``FRAME_GEOMETRIES - 1`` by each); in an image of at most ``SMALL_FRAME_SIDE`` pixels on its short side,
    also every tiling of up to ``SMALL_FRAME_TILES`` tiles that keeps its aspect ratio.

    Why the last: in a thumbnail (a photo at 0.3x) a tile is 25 to 40 pixels, the template lies above the
    Nyquist frequency and the ring's outer half with it, so neither score ranks the true tiling (10th to 22nd of
    33 on three missed photos, whose pilot peak there stood 7 to 9 standard deviations high). At this size the
    reads are cheap, and ``detect_many`` still decodes only each image's ``FRAME_CANDIDATES`` highest peaks.
    """
    if min(obs.size) < MIN_SIDE // 4:
        return []
    tilings = _tilings(*obs.size)
    bh, bw = obs.base.shape
    bases = np.array([np.diag([bw / across, bh / down]) for down, across in tilings])
    in_analysis = np.diag(obs.analysis_scale[::-1]) @ bases
    order = [0]
    for points in (_lattice_points(BAND[1]), layout.template):
        scores = _lattice_score(obs.power, obs.width, in_analysis, points)
        order += [i for i in (np.argsort(-scores[1:]) + 1)[: FRAME_GEOMETRIES - 1].tolist() if i not in order]
    if min(obs.size) <= SMALL_FRAME_SIDE:
        aspect_kept = {(down, across) for down, across in _tilings(*obs.size, nearby=True)
                       if down * across <= SMALL_FRAME_TILES}
        order += [i for i, tiling in enumerate(tilings) if tiling in aspect_kept and i not in order]
    return [_Geometry(bases[i], "frame", tilings[i]) for i in order] + _turned_frames(obs, layout)


def _turned_frames(obs: _Observed, layout: _Layout) -> list[_Geometry]:
    """The best ``TURNED_GEOMETRIES`` of the frame tilings turned by a small angle, by the template's score.

    A rotation by up to ``MAX_ROTATION`` degrees, with the canvas kept (corners cut) or expanded to hold the
    whole image, and any rescale after it, leaves the tile tied to a frame: the canvas's own, or the original
    image's, which the expanded canvas's size and the angle give back. Scoring these few hundred exact
    geometries finds a weak template that the search over every tile size, aspect and angle loses among the
    chance peaks of its much larger grid.
    """
    h, w = obs.size
    bh, bw = obs.base.shape
    turns, angles, tiles = [], [], []  # (the rotation, its angle, the tile's width and height) of each basis
    for theta in np.deg2rad(np.arange(-MAX_ROTATION, MAX_ROTATION + 1e-9, _TURN_STEP)):
        c, s = math.cos(theta), abs(math.sin(theta))
        if s < 1e-6:
            continue
        turn = _rotation(theta)
        for frame_h, frame_w in ((h, w), ((c * h - s * w) / (c * c - s * s), (c * w - s * h) / (c * c - s * s))):
            if min(frame_h, frame_w) < MIN_SIDE // 4:
                continue
            for down, across in _tilings(round(frame_h), round(frame_w), nearby=True):
                turns.append(turn)
                angles.append(theta)
                tiles.append((frame_w / across, frame_h / down))
    if not turns:
        return []
    # diag(bw / w, bh / h) @ rotation @ diag(tile): the products by diagonal matrices, elementwise.
    bases = np.array([bw / w, bh / h])[None, :, None] * np.array(turns) * np.array(tiles)[:, None, :]
    scores = _lattice_score(obs.power, obs.width, np.diag(obs.analysis_scale[::-1]) @ bases, layout.template)
    picked: list[int] = []
    for i in np.argsort(-scores).tolist():
        if all(abs(angles[i] - angles[j]) > math.radians(1.0) or not np.allclose(bases[i], bases[j], rtol=0.03)
               for j in picked):
            picked.append(i)
        if len(picked) == TURNED_GEOMETRIES:
            break
    return [_Geometry(bases[i], "turned") for i in picked]


def _aspects(height: int, width: int) -> list[float]:
    """Tile aspect ratios (width over height, in pixels) of the frame tilings this image may carry after a crop
    (to half its area), a rotation or a screenshot: those of images 0.7x to 1.5x its size."""
    found: list[float] = []
    for down, across in _tilings(height, width, 0.7, 1.5, nearby=True):
        aspect = (width / across) / (height / down)
        if 0.7 <= aspect <= 1.45 and all(abs(math.log(aspect / a)) > 0.015 for a in found):
            found.append(aspect)
    return found


def _search(obs: _Observed, layout: _Layout) -> list[_Geometry]:
    """The best-scoring geometries over tile size, aspect and rotation (a crop, a screenshot, a rotation the
    turned frames missed), by two scores: the power on the payload ring's whole lattice (which v2 marks carry
    too) and on the keyed template's few frequencies (whose power stands out where the ring's is spread too
    thin to see); the template's also over tile size and aspect alone (no rotation: see the module
    docstring)."""
    h, w = obs.power.shape[0], obs.width
    short = min(obs.size)
    to_analysis = min(h, w) / short
    low = max(36.0, short / (MAX_TILES + 0.5)) * to_analysis
    low, high = max(low, BAND[1] / 0.42), min(h, w) / 1.15
    if high <= low or short < MIN_SIDE // 4:
        return []
    logs = np.arange(math.log(low), math.log(high), 0.02)
    turned = np.deg2rad(np.arange(-MAX_ROTATION, MAX_ROTATION + 1e-9, 1.5))
    aspects = np.log(_aspects(*obs.size))
    to_base = np.diag([1 / obs.analysis_scale[1], 1 / obs.analysis_scale[0]])
    found = []
    for points, thetas in ((_lattice_points(BAND[1]), turned), (layout.template, turned),
                           (layout.template, np.zeros(1))):
        grid = np.stack(np.meshgrid(logs, aspects, thetas, indexing="ij"), axis=-1).reshape(-1, 3)
        scores = _lattice_score(obs.blurred, w, _bases(grid), points, nearest=True)
        picked: list[np.ndarray] = []
        for i in np.argsort(-scores):
            p = grid[i]
            if all(np.any(np.abs(p - q) > (0.06, 0.01, 0.04)) for q in picked):
                picked.append(p)
            if len(picked) == 6:
                break
        params, refined = _refine(obs, np.array(picked), points, fixed_angle=thetas.size == 1)
        best = np.argsort(-refined)[:SEARCH_GEOMETRIES]
        found += [_Geometry(to_base @ basis, "search") for basis in _bases(params[best])]
    return found


def _bases(params: np.ndarray) -> np.ndarray:
    """Tile bases (n x 2 x 2) from (log tile height, log aspect, rotation) rows."""
    height = np.exp(params[:, 0])
    scale = np.zeros((len(params), 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = height * np.exp(params[:, 1]), height
    return _rotation(params[:, 2]) @ scale


def _refine(obs: _Observed, params: np.ndarray, points: np.ndarray,
            rounds: int = 4, fixed_angle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pattern search on the score at ``points`` (interpolated, not the nearest bin), halving the step each
    round."""
    step = np.array([0.01, 0.006, 0.0 if fixed_angle else math.radians(0.75)])
    offsets = np.stack(np.meshgrid(*([np.array([-1.0, 0.0, 1.0])] * 3), indexing="ij"), axis=-1).reshape(-1, 3)
    scores = np.zeros(len(params))
    for _ in range(rounds):
        trial = (params[:, None, :] + offsets[None] * step).reshape(-1, 3)
        values = _lattice_score(obs.power, obs.width, _bases(trial), points).reshape(len(params), -1)
        best = values.argmax(axis=1)
        params = trial.reshape(len(params), -1, 3)[np.arange(len(params)), best]
        scores = values[np.arange(len(params)), best]
        step /= 2
    return params, scores


def _working(obs: _Observed, geometry: _Geometry) -> np.ndarray:
    """The detector's front end on the working grid this geometry implies (out-of-image pixels read as 0)."""
    import cv2

    if geometry.tiles is not None:
        down, across = geometry.tiles
        working = cv2.resize(obs.base, (TILE * across, TILE * down), interpolation=cv2.INTER_AREA)
        return _normalise(working)[0]
    image = obs.base
    a = geometry.basis / TILE  # working pixels -> base pixels
    shrink = int(min(np.linalg.norm(a, axis=0)))
    if shrink >= 2:
        image = cv2.resize(image, (image.shape[1] // shrink, image.shape[0] // shrink), interpolation=cv2.INTER_AREA)
        a = np.diag([image.shape[1] / obs.base.shape[1], image.shape[0] / obs.base.shape[0]]) @ a
    h, w = image.shape
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=float) @ np.linalg.inv(a).T
    low, high = np.floor(corners.min(axis=0)), np.ceil(corners.max(axis=0))
    size = high - low + 1
    if size[0] * size[1] > _MAX_WORKING_AREA:
        kept = np.floor(size * math.sqrt(_MAX_WORKING_AREA / (size[0] * size[1])))
        low, size = low + (size - kept) // 2, kept
    matrix = np.hstack([a, (a @ low)[:, None]]).astype(np.float32)
    dsize = (int(size[0]), int(size[1]))
    flags = cv2.WARP_INVERSE_MAP
    working = cv2.warpAffine(image, matrix, dsize, flags=cv2.INTER_LINEAR | flags, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones((h, w), np.uint8), matrix, dsize, flags=cv2.INTER_NEAREST | flags)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8))
    detail = _normalise(working)[0]
    detail *= inside
    return detail


def _first_per_image(candidates: list[tuple], count: int) -> list[tuple]:
    """The first ``count`` candidates of each image (its index is a candidate's first item), in their order."""
    taken: dict[int, int] = {}
    kept = []
    for candidate in candidates:
        if taken.get(candidate[0], 0) < count:
            kept.append(candidate)
            taken[candidate[0]] = taken.get(candidate[0], 0) + 1
    return kept


def detect(image: Image.Image, secret: bytes) -> ImageWatermarkResult:
    """Look for this secret's mark in ``image`` and decode its payload (see the module docstring)."""
    return detect_many([image], secret)[0]


def detect_many(images: Iterable[Image.Image], secret: bytes) -> list[ImageWatermarkResult]:
    """``detect`` for many images, decoding the candidates of all images in shared Viterbi batches.

    Frame geometries are read first for every image; the search runs only for images none of them decoded.
    Each geometry gives its two highest pilot peaks as candidates; the first candidate, by peak height, whose
    tag matches is the result. If none matches, the ``LIST_CANDIDATES`` highest peaks (of at least
    ``LIST_MIN_Z``) are decoded again into their ``LIST_SIZE`` most likely messages
    (``image_coding.decode_list``) and any whose tag matches is. The geometries of a stage are read on a few
    threads (the work is OpenCV and large numpy operations, which release the GIL); the result does not depend
    on their number.
    """
    layout = _layout(secret)
    observed = [_observe(_pixels(image)[0]) for image in images]
    results: list[ImageWatermarkResult | None] = [None] * len(observed)
    best_z = [0.0] * len(observed)

    def accept(i: int, z: float, soft: np.ndarray, geometry: _Geometry, info: np.ndarray) -> None:
        message = coding.unframe(layout.mac_key, info)
        if message is None:
            return
        errors = int(np.count_nonzero(coding.encode(info) != (soft < 0)))
        to_image = np.diag([observed[i].size[1] / observed[i].base.shape[1],
                            observed[i].size[0] / observed[i].base.shape[0]]) @ geometry.basis
        results[i] = ImageWatermarkResult(
            found=True,
            payload=WatermarkPayload.from_bytes(message),
            bit_errors_corrected=errors,
            coded_bits=coding.CODED_BITS,
            confidence=max(0.0, 1.0 - 2.0 * errors / coding.CODED_BITS),
            false_alarm_probability=FALSE_ALARM_BOUND,
            sync_z=z,
            geometry=geometry.kind,
            tile_size=(float(np.linalg.norm(to_image[:, 0])), float(np.linalg.norm(to_image[:, 1]))),
            rotation=math.degrees(math.atan2(to_image[1, 0], to_image[0, 0])),
        )

    for stage, budget in ((_frame_geometries, FRAME_CANDIDATES), (_search, SEARCH_CANDIDATES)):
        jobs = [(i, geometry)
                for i, obs in enumerate(observed) if results[i] is None for geometry in stage(obs, layout)]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            reads = list(pool.map(lambda job: _read(layout, _working(observed[job[0]], job[1])), jobs))
        flat = sorted(((i, z, soft, geometry) for (i, geometry), found in zip(jobs, reads) for z, soft in found),
                      key=lambda item: -item[1])
        flat = _first_per_image(flat, budget)  # at most the stage's share of the false-alarm bound
        if not flat:
            continue
        softs = np.array([item[2] for item in flat])
        decoded = np.concatenate([coding.decode(softs[k : k + 256]) for k in range(0, len(softs), 256)])
        for (i, z, soft, geometry), info in zip(flat, decoded):
            best_z[i] = max(best_z[i], z)
            if results[i] is None:
                accept(i, z, soft, geometry, info)
        # Where every first message failed its tag, the next most likely messages of the highest pilot peaks. A
        # peak below LIST_MIN_Z is under the chance peaks of an unmarked image (their median is about 4): on 37
        # photos x 34 attacks no runner-up message of one was ever right, and skipping them saves a tenth of an
        # unmarked image's scan.
        retried = _first_per_image([item for item in flat if results[item[0]] is None and item[1] >= LIST_MIN_Z],
                                   LIST_CANDIDATES)
        if retried:
            lists = coding.decode_list(np.array([item[2] for item in retried]), LIST_SIZE)
            for (i, z, soft, geometry), messages in zip(retried, lists):
                for info in messages[1:]:
                    if results[i] is None:
                        accept(i, z, soft, geometry, info)
    return [
        r
        if r is not None
        else ImageWatermarkResult(
            found=False,
            payload=None,
            bit_errors_corrected=None,
            coded_bits=coding.CODED_BITS,
            confidence=0.0,
            false_alarm_probability=FALSE_ALARM_BOUND,
            sync_z=best_z[i],
        )
        for i, r in enumerate(results)
    ]
