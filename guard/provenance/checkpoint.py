"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note text format.

A checkpoint commits to the log at one size::

    <origin>
    <tree size>
    <base64 root hash>

    — <key name> <base64(4-byte key hash || Ed25519 signature)>

The key hash is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]`` (0x01 names Ed25519), so any signed-note
verifier, such as Go's ``golang.org/x/mod/sumdb/note``, checks our checkpoints with the verifier key string
``verifier_key()`` prints.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from core.errors import VerificationError

ED25519_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space begin every signature line


def _raw_public(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, public_key) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + _raw_public(public_key)).digest()[:4]


def verifier_key(name: str, public_key) -> str:
    """The note verifier key string: ``name+hash+base64(0x01 || key)``."""
    return f"{name}+{key_hash(name, public_key).hex()}+{base64.b64encode(ED25519_TYPE + _raw_public(public_key)).decode()}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def sign(self, name: str, private_key) -> "SignedCheckpoint":
        body = self.body()
        sig = private_key.sign(body.encode())
        line = f"{SIGNATURE_PREFIX}{name} {base64.b64encode(key_hash(name, private_key.public_key()) + sig).decode()}\n"
        return SignedCheckpoint(checkpoint=self, note=body + "\n" + line)


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str  # the full signed note text

    @classmethod
    def from_text(cls, text: str) -> "SignedCheckpoint":
        """Parse a signed note. Raises ``VerificationError`` naming what is malformed."""
        body, sep, _ = text.partition("\n\n")
        if not sep:
            raise VerificationError("malformed checkpoint: no blank line before the signatures")
        lines = body.split("\n")
        if len(lines) < 3:
            raise VerificationError("malformed checkpoint: expected origin, size and root lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not origin:
            raise VerificationError("malformed checkpoint: empty origin")
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise VerificationError(f"malformed checkpoint: invalid tree size {size_text!r}")
        try:
            root = base64.b64decode(root_text, validate=True)
        except ValueError:
            raise VerificationError("malformed checkpoint: root hash is not base64") from None
        if len(root) != 32:
            raise VerificationError(f"malformed checkpoint: root hash is {len(root)} bytes, expected 32")
        return cls(checkpoint=Checkpoint(origin=origin, size=int(size_text), root=root), note=text)

    def verify(self, name: str, public_key) -> None:
        """Raise ``VerificationError`` unless the note carries a valid signature by ``name`` / ``public_key``."""
        from cryptography.exceptions import InvalidSignature

        body, _, signatures = self.note.partition("\n\n")
        body += "\n"
        if body != self.checkpoint.body():
            raise VerificationError("checkpoint text does not match its parsed fields")
        expected_hash = key_hash(name, public_key)
        for line in signatures.splitlines():
            if not line.startswith(SIGNATURE_PREFIX):
                raise VerificationError(f"malformed checkpoint signature line {line!r}")
            sig_name, _, blob = line[len(SIGNATURE_PREFIX):].partition(" ")
            try:
                raw = base64.b64decode(blob, validate=True)
            except ValueError:
                raise VerificationError("malformed checkpoint: signature is not base64") from None
            if sig_name != name or raw[:4] != expected_hash:
                continue
            try:
                public_key.verify(raw[4:], body.encode())
            except InvalidSignature:
                raise VerificationError(f"checkpoint signature by {name} is invalid") from None
            return
        raise VerificationError(f"checkpoint carries no signature by {name}")
