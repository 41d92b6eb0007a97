"""Keys: the log's checkpoint key, the content signer's certificate chain, and the watermark secret.

``guard keys init`` writes them to ``$GUARD_HOME/keys`` (default ``~/.guard/keys``), private keys as PKCS#8 PEM
with file mode 0600. Keys are never written into a record, a log line or a report. Production deployments bring
their own certificate chain, or a ``ContentSigner`` that calls a KMS/HSM.

- ``log.key`` / ``log.pub``: Ed25519, signs checkpoints in the C2SP signed-note format.
- ``ca.key`` / ``ca.pem``: a local development CA (EC P-256) that issues the signer certificate.
- ``signer.key`` / ``signer.pem`` / ``chain.pem``: the content signer (EC P-256, ES256) for C2PA manifests and
  DSSE envelopes; ``chain.pem`` is the signer certificate followed by the CA, as C2PA wants it.
- ``watermark.key``: 32 secret bytes that key the text and image watermarks.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.errors import KeysError
from guard.home import guard_home


class ContentSigner(Protocol):
    """Signs artifacts (C2PA claims, DSSE envelopes). Implement it to sign with a KMS or HSM."""

    algorithm: str  # "ES256"
    certificate_chain_pem: bytes  # signer certificate first, then intermediates / CA

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA signature over ``data`` (SHA-256)."""


@dataclass(frozen=True)
class LocalContentSigner:
    """A content signer whose PKCS#8 private key is a local file."""

    private_key_pem: bytes
    certificate_chain_pem: bytes
    algorithm: str = "ES256"

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    @functools.cached_property
    def _key(self):
        """The parsed key, kept: parsing the PEM cost more than the signature itself."""
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(self.private_key_pem, password=None)


class KeyStore:
    """The key folder. Every accessor raises ``KeysError`` with the fix when a key is missing."""

    FILES = ("log.key", "log.pub", "ca.key", "ca.pem", "signer.key", "signer.pem", "chain.pem", "watermark.key")
    PRIVATE = ("log.key", "ca.key", "signer.key", "watermark.key")

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else guard_home() / "keys"

    def path(self, name: str) -> Path:
        return self.directory / name

    def exists(self) -> bool:
        return all(self.path(name).is_file() for name in self.FILES)

    def _read(self, name: str) -> bytes:
        path = self.path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeysError(f"{path}: key file missing; run `guard keys init` (or pass --keys DIR)") from None
        except OSError as exc:
            raise KeysError(f"{path}: cannot read key file: {exc.strerror}") from None

    def init(self, *, force: bool = False, subject: str = "genguard local") -> list[Path]:
        """Create every key and certificate. Refuses to overwrite existing keys unless ``force``."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if self.directory.exists() and not self.directory.is_dir():
            raise KeysError(f"{self.directory}: is a file, not a key folder; pass --keys a folder")
        existing = [self.path(n) for n in self.FILES if self.path(n).exists()]
        if existing and not force:
            raise KeysError(f"{self.directory}: keys already exist; pass --force to replace them (old signatures "
                            "will no longer verify against the new keys)")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

        log_key = ed25519.Ed25519PrivateKey.generate()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        signer_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert, signer_cert = _certificates(ca_key, signer_key, subject)

        pem = serialization.Encoding.PEM
        pkcs8 = serialization.PrivateFormat.PKCS8
        none = serialization.NoEncryption()
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        contents = {
            "log.key": log_key.private_bytes(pem, pkcs8, none),
            "log.pub": log_key.public_key().public_bytes(pem, spki),
            "ca.key": ca_key.private_bytes(pem, pkcs8, none),
            "ca.pem": ca_cert.public_bytes(pem),
            "signer.key": signer_key.private_bytes(pem, pkcs8, none),
            "signer.pem": signer_cert.public_bytes(pem),
            "chain.pem": signer_cert.public_bytes(pem) + ca_cert.public_bytes(pem),
            "watermark.key": secrets.token_bytes(32),
        }
        written = []
        for name, data in contents.items():
            path = self.path(name)
            mode = 0o600 if name in self.PRIVATE else 0o644
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(path, mode)
            written.append(path)
        return written

    # -- accessors -------------------------------------------------------------------------------------------

    def log_private_key(self):
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(self._read("log.key"), password=None)

    def log_public_key(self):
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_public_key(self._read("log.pub"))

    def content_signer(self) -> LocalContentSigner:
        return LocalContentSigner(private_key_pem=self._read("signer.key"), certificate_chain_pem=self._read("chain.pem"))

    def certificate_chain_pem(self) -> bytes:
        """The signer certificate followed by the CA: what a verifier needs, and nothing secret."""
        return self._read("chain.pem")

    def signer_certificate_pem(self) -> bytes:
        return self._read("signer.pem")

    def ca_certificate_pem(self) -> bytes:
        return self._read("ca.pem")

    def watermark_secret(self) -> bytes:
        secret = self._read("watermark.key")
        if len(secret) != 32:
            raise KeysError(f"{self.path('watermark.key')}: expected 32 bytes, found {len(secret)}")
        return secret

    def watermark_key_id(self) -> str:
        """A public name for the watermark secret: the first 8 hex digits of its SHA-256."""
        return hashlib.sha256(self.watermark_secret()).hexdigest()[:8]


def _certificates(ca_key, signer_key, subject: str):
    """A local CA and a signer certificate with the extensions C2PA's certificate profile asks for."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{subject} CA"),
    ])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{subject} content signer"),
    ])
    signer_cert = (
        x509.CertificateBuilder()
        .subject_name(signer_name)
        .issuer_name(ca_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_cert, signer_cert
