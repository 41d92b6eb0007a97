"""DSSE envelopes over in-toto Statements: the signature a text output carries.

The Statement's subject is the text (its SHA-256), its predicate the provenance record, so anyone holding the
text, the envelope and the signer's certificate can check who vouched for the text and find its log record.
Signatures use the content signer (ES256, DER-encoded as DSSE and sigstore expect); the key id is the SHA-256 of
the signer's SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from core.errors import InputError, VerificationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:genguard:provenance:v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _first_certificate(chain_pem: bytes):
    from cryptography import x509

    certs = x509.load_pem_x509_certificates(chain_pem)
    if not certs:
        raise InputError("certificate chain holds no certificate")
    return certs


def key_id(certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def statement(text_sha256: str, name: str, predicate: dict[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": text_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def sign(statement_data: dict[str, Any], signer) -> dict[str, Any]:
    """A DSSE envelope signed by ``signer`` (a ``guard.keys.ContentSigner``)."""
    from guard.provenance.record import canonical

    payload = canonical(statement_data)
    sig = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": _chain_key_id(signer.certificate_chain_pem), "sig": base64.b64encode(sig).decode()}],
    }


@functools.lru_cache(maxsize=8)
def _chain_key_id(chain_pem: bytes) -> str:
    """The key id of a chain's signer certificate; kept per chain, as a signer signs many outputs."""
    return key_id(_first_certificate(chain_pem)[0])


def envelope_digest(envelope: dict[str, Any]) -> str:
    from guard.provenance.record import canonical

    return hashlib.sha256(canonical(envelope)).hexdigest()


def verify(envelope: dict[str, Any], chain_pem: bytes, *, trust_anchor_pem: bytes | None = None) -> dict[str, Any]:
    """Check the envelope's signature against the signer certificate in ``chain_pem`` and return the Statement.

    With ``trust_anchor_pem``, also check that the signer certificate was issued by that CA.
    Raises ``VerificationError`` on any failure.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"malformed DSSE envelope: {exc}") from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"unexpected payload type {payload_type!r}")
    if not isinstance(signatures, list) or not all(isinstance(e, dict) for e in signatures):
        raise VerificationError("malformed DSSE envelope: signatures is not a list of objects")
    # The signer is the certificate whose key id a signature names (``chain_pem`` may hold a whole chain, or
    # the certificates a third party was given); the first certificate when no key id matches.
    certificates = _first_certificate(chain_pem)
    named = {e.get("keyid") for e in signatures}
    leaf = next((c for c in certificates if key_id(c) in named), certificates[0])
    kid = key_id(leaf)
    message = pae(payload_type, payload)
    for entry in signatures:
        if entry.get("keyid") not in (None, "", kid):
            continue
        try:
            leaf.public_key().verify(base64.b64decode(entry["sig"]), message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, KeyError):
            continue
        break
    else:
        raise VerificationError("no valid signature by the signer certificate on the envelope")
    if trust_anchor_pem is not None:
        _check_issued_by(leaf, trust_anchor_pem)
    try:
        data = json.loads(payload)
    except ValueError:
        raise VerificationError("envelope payload is not JSON") from None
    if data.get("_type") != STATEMENT_TYPE:
        raise VerificationError("envelope payload is not an in-toto Statement v1")
    return data


def _check_issued_by(leaf, anchor_pem: bytes) -> None:
    from cryptography.exceptions import InvalidSignature

    anchors = _first_certificate(anchor_pem)
    for anchor in anchors:
        try:
            leaf.verify_directly_issued_by(anchor)
            return
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise VerificationError("signer certificate is not issued by the trusted CA")
