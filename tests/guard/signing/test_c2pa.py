"""C2PA manifests: what we sign validates (Trusted with the local CA), says what it must, and the reader reports
any file, however odd, without crashing."""

from __future__ import annotations

import datetime as dt
import io
import os

import pytest
from PIL import Image

from generators.base import GeneratorInfo
from core.errors import InputError, KeysError
from guard.signing.c2pa import RECORD_ASSERTION, TRAINED_ALGORITHMIC_MEDIA, read_manifest, sign_image

FORMATS = [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
INFO = GeneratorInfo(name="diffusers", model_id="org/tiny-sd", revision="0123abc", weights_sha256="ab" * 32)
RECORD = {"record_id": "00112233aabbccdd", "log": {"origin": "genguard.log/test", "index": 7}}
WATERMARK = {"scheme": "genguard-dft-ring/v1", "key_id": "beef", "payload": "beef00112233aabbccdd"}


def _image(fmt: str, size=(96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buf, fmt)
    return buf.getvalue()


def _sign(keys, fmt="PNG", mime="image/png", signer=None, **kw) -> bytes:
    return sign_image(
        _image(fmt), mime, signer or keys.content_signer(), generator_info=INFO, record_ref=RECORD,
        watermark=kw.pop("watermark", WATERMARK), **kw,
    )


@pytest.mark.parametrize("fmt,mime", FORMATS)
def test_signed_image_is_trusted_with_local_ca_and_declares_ai(keys, fmt, mime):
    signed = _sign(keys, fmt, mime)
    report = read_manifest(signed, trust_anchors_pem=keys.ca_certificate_pem())
    assert report.status == "present"
    assert report.validation_state == "Trusted" and report.failure_codes == ()
    assert report.ai_generated and report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert report.generator["name"] == "org/tiny-sd" and report.generator["version"] == "0123abc"
    assert report.record_ref == RECORD
    assert report.soft_binding["alg"] == "genguard-dft-ring/v1"
    assert report.soft_binding["blocks"][0]["value"] == "vu8AESIzqrvM3Q=="  # base64 of the payload bytes
    assert RECORD_ASSERTION in report.assertions and "c2pa.thumbnail.claim" not in " ".join(report.assertions)


@pytest.mark.parametrize("fmt,mime", FORMATS)
def test_pixels_untouched(keys, fmt, mime):
    original = _image(fmt)
    signed = sign_image(original, mime, keys.content_signer(), generator_info=INFO, record_ref=RECORD)
    assert signed != original
    assert Image.open(io.BytesIO(signed)).tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_without_trust_anchor_valid_but_untrusted(keys):
    report = read_manifest(_sign(keys))
    assert report.validation_state == "Valid"
    assert report.failure_codes == ("signingCredential.untrusted",)


def test_other_ca_does_not_make_it_trusted(keys, tmp_path):
    from guard.signing.keys import KeyStore

    other = KeyStore(tmp_path / "other")
    other.init()
    report = read_manifest(_sign(keys), trust_anchors_pem=other.ca_certificate_pem())
    assert report.validation_state == "Valid" and "signingCredential.untrusted" in report.failure_codes


class RemoteSigner:
    """Stands in for a KMS/HSM client: no private key in this process, only a ``sign`` call."""

    algorithm = "ES256"

    def __init__(self, local, raw: bool):
        self._local = local
        self._raw = raw
        self.certificate_chain_pem = local.certificate_chain_pem
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        self.calls += 1
        der = self._local.sign(data)
        if not self._raw:
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize("raw", [False, True], ids=["der", "raw-r-s"])
def test_callback_signer_for_kms(keys, raw):
    remote = RemoteSigner(keys.content_signer(), raw)
    report = read_manifest(_sign(keys, signer=remote), trust_anchors_pem=keys.ca_certificate_pem())
    assert remote.calls == 1
    assert report.validation_state == "Trusted"


def test_no_watermark_no_soft_binding(keys):
    report = read_manifest(_sign(keys, watermark=None))
    assert report.soft_binding is None and report.record_ref == RECORD


def test_tampered_pixels_are_invalid(keys):
    signed = bytearray(_sign(keys, "JPEG", "image/jpeg"))
    signed[-200] ^= 0x55  # inside the entropy-coded scan: still decodes, but no longer what was signed
    report = read_manifest(bytes(signed), trust_anchors_pem=keys.ca_certificate_pem())
    assert report.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in report.failure_codes


def test_unsupported_type(keys):
    with pytest.raises(InputError, match="image/gif"):
        sign_image(b"GIF89a", "image/gif", keys.content_signer(), generator_info=INFO, record_ref=RECORD)


def test_certificate_without_c2pa_key_usage_is_refused(keys):
    """C2PA wants an end-entity certificate with an extended key usage; one without is refused at signing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from guard.signing.keys import LocalContentSigner

    ca_key = serialization.load_pem_private_key(keys.path("ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(keys.ca_certificate_pem())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no eku")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    signer = LocalContentSigner(
        private_key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        certificate_chain_pem=cert.public_bytes(pem) + keys.ca_certificate_pem(),
    )
    with pytest.raises(KeysError, match="C2PA"):
        _sign(keys, signer=signer)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", os.urandom(4096), b"GIF89a" + b"\0" * 50],
    ids=["empty", "png-magic", "jpeg-magic", "webp-magic", "random", "gif"],
)
def test_reader_never_crashes_on_odd_bytes(data):
    report = read_manifest(data)
    assert report.status in ("absent", "unreadable")


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.9])
def test_reader_on_truncated_signed_file(keys, cut):
    signed = _sign(keys, "JPEG", "image/jpeg")
    report = read_manifest(signed[: int(len(signed) * cut)])
    assert report.status in ("absent", "unreadable") or report.validation_state == "Invalid"


def test_reader_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_manifest(tmp_path / "gone.jpg")
