"""C2PA sign and verify time per image, against the cost of encoding and decoding the same image, in one run.

The peer here is the work an image file costs anyway: signing is compared with encoding the image (PIL, the
format's default settings), verifying with decoding it. Rows: a natural 512x512 image (scikit-image's
astronaut) as PNG, JPEG and WebP; the same scaled to 3840x2160; and the photographs in ../shared/interop/c2pa
(a JPEG and a WebP as shipped, and the JPEG's pixels as PNG). Signing is timed with the local key handed to
c2pa-rs and through the callback a KMS/HSM would use; verification reads and validates the manifest with the
local CA as trust anchor (the result must be Trusted).

    python benchmarks/c2pa_sign_verify.py            # median of up to 15 runs (3 s) per cell
    python benchmarks/c2pa_sign_verify.py --repeat 50
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.base import GeneratorInfo  # noqa: E402
from guard.signing.keys import KeyStore  # noqa: E402
from guard.signing.c2pa import read_manifest, sign_image  # noqa: E402

INTEROP = Path(__file__).resolve().parents[2] / "shared" / "interop" / "c2pa"
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
INFO = GeneratorInfo("diffusers", "stabilityai/sdxl-turbo", "71153311d3dbb46851df1931d3ca6e939de83304", "ab" * 32)
RECORD = {"record_id": "0123456789abcdef", "log": {"origin": "genguard.log/bench", "index": 41}}
WATERMARK = {"scheme": "genguard-dft-ring/v1", "key_id": "beef", "payload": "beef0123456789abcdef"}


class CallbackSigner:
    """Signs through a Python callback, as a KMS/HSM client does (c2pa-rs never sees the key)."""

    algorithm = "ES256"

    def __init__(self, local) -> None:
        self._local = local
        self.certificate_chain_pem = local.certificate_chain_pem

    def sign(self, data: bytes) -> bytes:
        return self._local.sign(data)


def median_ms(fn, repeat: int, budget_s: float = 3.0) -> float:
    """Median of ``repeat`` timed calls after a warm-up, stopping early (at 3 calls or more) past ``budget_s``."""
    fn()
    times: list[float] = []
    while len(times) < repeat and (len(times) < 3 or sum(times) < budget_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def encode(image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def decode(data: bytes) -> None:
    from PIL import Image

    Image.open(io.BytesIO(data)).load()


def cases():
    """(name, PIL image, format, file bytes) for every row."""
    from PIL import Image
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    for fmt in ("PNG", "JPEG", "WEBP"):
        yield f"astronaut 512x512 {fmt}", astronaut, fmt, encode(astronaut, fmt)
    big = astronaut.resize((3840, 2160), Image.Resampling.LANCZOS)
    for fmt in ("PNG", "JPEG", "WEBP"):
        yield f"astronaut 3840x2160 {fmt}", big, fmt, encode(big, fmt)
    for name in ("earth_apollo17.jpg", "mars.webp"):
        path = INTEROP / name
        if path.is_file():
            photo = Image.open(path)
            photo.load()
            yield f"{name} {photo.width}x{photo.height}", photo, photo.format, path.read_bytes()
    if (INTEROP / "earth_apollo17.jpg").is_file():
        photo = Image.open(INTEROP / "earth_apollo17.jpg").convert("RGB")
        yield f"earth_apollo17 as PNG {photo.width}x{photo.height}", photo, "PNG", encode(photo, "PNG")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    keys = KeyStore(Path(tempfile.mkdtemp()) / "keys")
    keys.init()
    local, remote, ca = keys.content_signer(), CallbackSigner(keys.content_signer()), keys.ca_certificate_pem()

    def sign(data, fmt, signer):
        return sign_image(data, MIME[fmt], signer, generator_info=INFO, record_ref=RECORD, watermark=WATERMARK)

    header = (f"{'image':<34} {'KB':>6} {'encode':>7} {'sign':>7} {'sign cb':>7} {'sign/enc':>8} "
              f"{'decode':>7} {'verify':>7} {'ver/dec':>7} {'+bytes':>7}")
    print(header)
    print("-" * len(header))
    for name, image, fmt, data in cases():
        signed = sign(data, fmt, local)
        report = read_manifest(signed, trust_anchors_pem=ca)
        assert report.validation_state == "Trusted", (name, report)
        t_encode = median_ms(lambda: encode(image, fmt), args.repeat)
        t_sign = median_ms(lambda: sign(data, fmt, local), args.repeat)
        t_sign_cb = median_ms(lambda: sign(data, fmt, remote), args.repeat)
        t_decode = median_ms(lambda: decode(signed), args.repeat)
        t_verify = median_ms(lambda: read_manifest(signed, trust_anchors_pem=ca), args.repeat)
        print(f"{name:<34} {len(data) / 1024:>6.0f} {t_encode:>7.1f} {t_sign:>7.1f} {t_sign_cb:>7.1f} "
              f"{t_sign / t_encode:>7.2f}x {t_decode:>7.1f} {t_verify:>7.1f} {t_verify / t_decode:>6.2f}x "
              f"{len(signed) - len(data):>7}")
    for name in ("CACA.jpg", "adobe-20220124-E-clm-CAICAI.jpg"):
        path = INTEROP / name
        if path.is_file():
            data = path.read_bytes()
            t_decode = median_ms(lambda: decode(data), args.repeat)
            t_verify = median_ms(lambda: read_manifest(data), args.repeat)
            print(f"{'verify ' + name[:27]:<34} {len(data) / 1024:>6.0f} {'':>7} {'':>7} {'':>7} {'':>8} "
                  f"{t_decode:>7.1f} {t_verify:>7.1f} {t_verify / t_decode:>6.2f}x")
    print("\ntimes in ms (median); sign cb = through a Python signing callback (KMS/HSM path); "
          "+bytes = manifest size added to the file")


if __name__ == "__main__":
    main()
