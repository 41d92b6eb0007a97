"""A robust, keyed, invisible image watermark that carries a key id and a provenance record id.

Design (``SCHEME``), in the order the embedder applies it:

1. **Payload**: 16-bit key id + 64-bit record id + 32-bit HMAC tag = 112 bits, convolutionally coded to 354 bits
   (``image_coding``: soft-decision Viterbi; the tag is the integrity check).
2. **Pattern**: a 128x128 tile whose 2-D DFT is non-zero only in a mid-frequency ring (radius 12..36 cycles per
   tile, i.e. 0.09..0.28 cycles per working pixel). Measured per ring, lower frequencies are drowned by the
   image's own content, higher ones by JPEG q50; this ring is where the mark's signal-to-interference ratio is
   best under every listed attack. Each real degree of freedom (the real or imaginary part of one coefficient)
   carries either a *pilot* value (20 %, used to find the tile's position) or one coded bit times a sign.
   Which is which, the signs and the pilot are drawn from the secret, so the mark can be neither read nor
   located without it.
3. **Informed embedding**: the image is the detector's largest noise source, and the embedder sees it, so it
   runs the detector's front end on the image and, for each coded bit the image's content pushes the wrong
   way, boosts that bit's amplitude to cancel it (bounded; the residual is then rescaled to the same RMS).
4. **Working resolution**: the luma residual is built at a working resolution, the image downscaled by 2**k
   with k the smallest level that brings its area under 2 x 512 x 512, tiled from the top-left corner,
   upscaled by exactly 2**k and added to R, G and B alike (a pure luma change). Cost hardly grows with the
   image: a 4K image is marked at 960x540, a 512x512 one at full size. The level depends on pixel scale, not
   on the image's size after a crop, so a crop is only a translation of the tiling.
5. **Detection**: for the level the image's size implies and its neighbours (a crop may cross a level; a
   border or padding may grow the image past one), the luma is area-downscaled, high-passed and normalised by
   its local contrast (so a brightness or contrast change does nothing and textured regions do not drown the
   mark), and all tiles are summed into one 128x128 tile ("folding": any crop offset becomes a cyclic shift).
   A cross-correlation with the keyed pilot finds the shift to a fraction of a pixel; the aligned coefficients
   give one soft value per coded bit, weighted by the noise in its frequency ring, and the Viterbi decoder
   returns the payload.

Decision rule: ``found`` only if the decoded tag matches. At most ``MAX_ATTEMPTS`` candidates (3 levels x 2
pilot peaks) are decoded per image and each matches by chance with probability 2**-32 on an image that holds no
mark for this secret, so the false-alarm probability is at most ``FALSE_ALARM_BOUND`` = 6 * 2**-32 ≈ 1.4e-9.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InputError, KeysError
from guard.watermark import image_coding as coding

if TYPE_CHECKING:
    from PIL import Image

SCHEME = "genguard-dft-ring/v1"
WORKING_AREA = 2 * 512 * 512  # the working image has at most this many pixels (and over a quarter of it)
TILE = 128
BAND = (12.0, 36.0)  # ring of the tile's DFT, in cycles per tile
PILOT_FRACTION = 0.2
BASE_RMS = 2.0  # residual RMS (8-bit levels) at strength 1: PSNR ≈ 42 dB
MIN_WORKING_SIDE = 32
PEAKS_PER_LEVEL = 2
MAX_ATTEMPTS = 3 * PEAKS_PER_LEVEL
FALSE_ALARM_BOUND = MAX_ATTEMPTS * 2.0**-coding.TAG_BITS
_HIGHPASS_SIGMA = 6.0
_CONTRAST_BOX = 41  # local contrast window (a box filter: constant cost per pixel)
_MAX_BOOST = 3.0  # informed embedding: at most this many times the base amplitude on one degree of freedom
_MARGIN = 1.5  # ... to give every coded bit at least this many times its clean response
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

    ``confidence`` is the decoding margin, 1 - 2 * (coded-bit error rate), clipped to [0, 1]: 1.0 for an
    untouched image, falling toward 0 as an attack nears what the code can correct (0 when nothing was found).
    ``false_alarm_probability`` bounds the chance that an image without this secret's mark is reported found.
    """

    found: bool
    payload: WatermarkPayload | None
    bit_errors_corrected: int | None
    coded_bits: int
    confidence: float
    false_alarm_probability: float
    sync_z: float  # height of the best pilot correlation peak in robust standard deviations
    level: int | None  # the working level (downscale 2**level) the mark was read at

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
            "level": self.level,
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


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, b"genguard image watermark v1 " + label, hashlib.sha256).digest()


@lru_cache(maxsize=8)
def _layout(secret: bytes) -> _Layout:
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise KeysError("the watermark secret must be at least 16 bytes (guard keys init makes 32)")
    freqs = np.fft.fftfreq(TILE, d=1.0 / TILE)
    fr, fc = np.meshgrid(freqs, freqs, indexing="ij")
    radius = np.hypot(fr, fc)
    half = (fc > 0) | ((fc == 0) & (fr > 0))
    rows, cols = np.nonzero((radius >= BAND[0]) & (radius <= BAND[1]) & half)
    dofs = 2 * rows.size
    rng = np.random.default_rng(np.frombuffer(_derive(secret, b"layout"), dtype=np.uint64))
    order = rng.permutation(dofs)
    n_pilot = int(round(PILOT_FRACTION * dofs))
    pilot = np.zeros(dofs)
    pilot[order[:n_pilot]] = rng.choice([-1.0, 1.0], size=n_pilot)
    bit = np.full(dofs, -1)
    bit[order[n_pilot:]] = np.arange(dofs - n_pilot) % coding.CODED_BITS
    return _Layout(
        rows=rows,
        cols=cols,
        freq_rows=fr[rows, cols],
        freq_cols=fc[rows, cols],
        ring=np.repeat(np.rint(radius[rows, cols]).astype(int), 2),
        pilot=pilot,
        bit=bit,
        sign=rng.choice([-1.0, 1.0], size=dofs),
        mac_key=_derive(secret, b"tag"),
    )


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


def working_level(height: int, width: int) -> int:
    """The smallest k such that the image downscaled by 2**k has at most ``WORKING_AREA`` pixels."""
    ratio = math.sqrt(height * width / WORKING_AREA)
    return max(0, math.ceil(math.log2(ratio))) if ratio > 1 else 0


def embed(image: Image.Image, payload: WatermarkPayload, secret: bytes, strength: float = 1.0) -> Image.Image:
    """Return a copy of ``image`` carrying ``payload``, readable only with ``secret``.

    ``strength`` scales the residual (1.0: RMS 2 levels, PSNR ≈ 42 dB); the mode (L, LA, RGB, RGBA) is kept,
    grey modes come back as L, others as RGB. Raises ``InputError`` for an image too small to carry the mark.
    """
    import cv2
    from PIL import Image

    if strength <= 0:
        raise ValueError(f"strength must be positive, got {strength}")
    layout = _layout(secret)
    pixels, alpha = _pixels(image)
    height, width = pixels.shape[:2]
    level = working_level(height, width)
    scale = 1 << level
    h, w = -(-height // scale), -(-width // scale)
    if min(height, width) // scale < MIN_WORKING_SIDE:
        raise InputError(f"image is {width}x{height}: too small or too thin to carry the watermark")
    target = _carrier_values(layout, payload.to_bytes())
    values = _informed_values(layout, target, _luma(pixels, level), strength)
    residual = np.tile(_tile(layout, values), (-(-h // TILE), -(-w // TILE)))[:h, :w]
    if level:
        residual = cv2.resize(residual, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)[:height, :width]
    step = max(1, scale // 2)  # the RMS from a subsample: the residual is smooth at this step
    residual *= BASE_RMS * strength / float(residual[::step, ::step].std())
    if pixels.ndim == 3:
        residual = cv2.merge([residual, residual, residual])  # the same offset on R, G, B: a pure luma change
    marked = cv2.add(pixels, residual, dtype=cv2.CV_8U)  # rounds and saturates in one multithreaded pass
    out = Image.fromarray(marked, "L" if marked.ndim == 2 else "RGB")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _informed_values(layout: _Layout, target: np.ndarray, luma: np.ndarray, strength: float) -> np.ndarray:
    """Degree-of-freedom amplitudes that cancel the image's own interference with the mark.

    The image itself is the largest noise the detector faces: its content projects onto every degree of
    freedom, and where that projection has the wrong sign it erases the mark before any attack. The embedder
    sees the image, so it runs the detector's own front end on it and adds, where the image opposes the
    target, just enough to cancel it (at most ``_MAX_BOOST`` times the base amplitude; the total residual is
    then rescaled to the same RMS, so PSNR is unchanged).
    """
    detail, denominator = _normalise(luma)
    host = _dof_values(layout, _fold_fft(detail)[layout.rows, layout.cols])
    plain = _tile(layout, target)
    tiled = np.tile(plain, (-(-luma.shape[0] // TILE), -(-luma.shape[1] // TILE)))[: luma.shape[0], : luma.shape[1]]
    response = _dof_values(layout, _fold_fft(_highpass(tiled) / denominator)[layout.rows, layout.cols])
    counts = np.maximum(np.bincount(layout.ring), 1)
    gain = np.maximum(np.bincount(layout.ring, weights=response * target) / counts, 1e-9)[layout.ring]
    weight = 1.0 / _ring_variance(layout, host)[layout.ring]
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


def _luma(pixels: np.ndarray, level: int) -> np.ndarray:
    """Float luma (BT.601 weights) area-downscaled by 2**level; trailing rows and columns that do not fill a
    2**level block are dropped, as the embedder's tiling starts at the top-left corner."""
    import cv2

    scale = 1 << level
    height, width = (pixels.shape[0] // scale) * scale, (pixels.shape[1] // scale) * scale
    array = pixels[:height, :width]
    if level:
        array = cv2.resize(array, (width // scale, height // scale), interpolation=cv2.INTER_AREA)
    luma = array.astype(np.float32)
    return luma @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if luma.ndim == 3 else luma


def _highpass(luma: np.ndarray) -> np.ndarray:
    import cv2

    return luma - cv2.GaussianBlur(luma, (0, 0), _HIGHPASS_SIGMA)


def _normalise(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """High-pass and divide by local contrast; returns the result and the divisor (the detector's front end)."""
    import cv2

    detail = _highpass(luma)
    local_power = cv2.blur(detail * detail, (_CONTRAST_BOX, _CONTRAST_BOX))  # running sums: may dip below 0
    denominator = np.sqrt(np.maximum(local_power, 0.0)) + 0.5
    return detail / denominator, denominator


def _fold_fft(detail: np.ndarray) -> np.ndarray:
    """Sum all TILE x TILE tiles (zero-padding the last ones) and return the DFT of the sum (the half with
    non-negative column frequencies, which holds every coefficient of the layout)."""
    h, w = detail.shape
    padded = np.zeros((-(-h // TILE) * TILE, -(-w // TILE) * TILE), dtype=np.float32)
    padded[:h, :w] = detail
    return np.fft.rfft2(padded.reshape(padded.shape[0] // TILE, TILE, padded.shape[1] // TILE, TILE).sum(axis=(0, 2)))


def _ring_variance(layout: _Layout, values: np.ndarray) -> np.ndarray:
    """Mean square of the degrees of freedom in each integer-radius ring: the noise level the detector weighs by."""
    return np.bincount(layout.ring, weights=values**2) / np.maximum(np.bincount(layout.ring), 1) + 1e-12


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
        rr = np.arange(r - 3, r + 4) % TILE
        cc = np.arange(c - 3, c + 4) % TILE
        work[np.ix_(rr, cc)] = -np.inf
    return found


def _candidates(layout: _Layout, pixels: np.ndarray, level: int) -> list[tuple[float, int, np.ndarray]]:
    """(pilot peak z, level, soft coded bits) for the best alignments of the folded image at ``level``."""
    if level < 0 or min(pixels.shape[:2]) >> level < MIN_WORKING_SIDE:
        return []
    spectrum = _fold_fft(_normalise(_luma(pixels, level))[0])
    coefficients = spectrum[layout.rows, layout.cols]
    weight = 1.0 / _ring_variance(layout, _dof_values(layout, coefficients))[layout.ring]
    pilot = _spectrum(layout, layout.pilot * weight)[:, : TILE // 2 + 1]
    corr = np.fft.irfft2(spectrum * np.conj(pilot), s=(TILE, TILE))
    carriers = layout.bit >= 0
    found = []
    for row, col, z in _peaks(corr, PEAKS_PER_LEVEL):
        phase = np.exp(2j * np.pi * (layout.freq_rows * row + layout.freq_cols * col) / TILE)
        values = (_dof_values(layout, coefficients * phase) * weight * layout.sign)[carriers]
        found.append((z, level, np.bincount(layout.bit[carriers], weights=values, minlength=coding.CODED_BITS)))
    return found


def detect(image: Image.Image, secret: bytes) -> ImageWatermarkResult:
    """Look for this secret's mark in ``image`` and decode its payload (see the module docstring)."""
    return detect_many([image], secret)[0]


def detect_many(images: Iterable[Image.Image], secret: bytes) -> list[ImageWatermarkResult]:
    """``detect`` for many images, decoding all their candidates in shared Viterbi batches (faster per image).

    Three levels are tried per image: the one its size implies, one coarser (a crop that crossed a level) and
    one finer (a border or padding that grew the image past one; costliest, so tried only when the first two
    found nothing). At each, the two highest pilot peaks give a candidate alignment; the first candidate, by
    peak height, whose tag matches is the result.
    """
    layout = _layout(secret)
    pixels = [_pixels(image)[0] for image in images]
    observed = [working_level(*p.shape[:2]) for p in pixels]
    results: list[ImageWatermarkResult | None] = [None] * len(pixels)
    best_z = [0.0] * len(pixels)
    for offsets in ((0, 1), (-1,)):
        pending = [i for i, r in enumerate(results) if r is None]
        per_image = {i: [c for o in offsets for c in _candidates(layout, pixels[i], observed[i] + o)] for i in pending}
        flat = [(i, c) for i in pending for c in per_image[i]]
        if not flat:
            continue
        softs = np.array([c[2] for _, c in flat])
        decoded = np.concatenate([coding.decode(softs[k : k + 256]) for k in range(0, len(softs), 256)])
        for (i, (z, level, soft)), info in sorted(zip(flat, decoded), key=lambda item: -item[0][1][0]):
            best_z[i] = max(best_z[i], z)
            if results[i] is not None:
                continue
            message = coding.unframe(layout.mac_key, info)
            if message is not None:
                errors = int(np.count_nonzero(coding.encode(info) != (soft < 0)))
                results[i] = ImageWatermarkResult(
                    found=True,
                    payload=WatermarkPayload.from_bytes(message),
                    bit_errors_corrected=errors,
                    coded_bits=coding.CODED_BITS,
                    confidence=max(0.0, 1.0 - 2.0 * errors / coding.CODED_BITS),
                    false_alarm_probability=FALSE_ALARM_BOUND,
                    sync_z=z,
                    level=level,
                )
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
            level=None,
        )
        for i, r in enumerate(results)
    ]
