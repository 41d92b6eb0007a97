"""C2PA manifests for images: sign one into a PNG, JPEG or WebP file, and read any file's manifest.

The manifest says what a reviewer (or a platform's C2PA reader) must learn from the file alone:

- ``c2pa.actions`` -> ``c2pa.created`` with ``digitalSourceType`` trainedAlgorithmicMedia (the IPTC term C2PA
  uses for "made by a generative model") and the model as ``softwareAgent``;
- ``c2pa.soft-binding`` naming our invisible watermark, so a reader knows the pixels carry a mark that survives
  the manifest being stripped;
- ``org.genguard.provenance``: the provenance record this image belongs to (record id, log origin, index).

Signing goes through c2pa-python (the reference implementation, c2pa-rs, underneath). A ``ContentSigner`` that
exposes its PKCS#8 key is handed to c2pa-rs directly; any other signer (a KMS or HSM client) is called back with
the bytes to sign. No network: no time-stamp authority unless one is configured, no remote manifests fetched.

Reading never raises on a hostile or odd file: what cannot be read is reported as ``unreadable`` with the reason.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.errors import InputError, KeysError

if TYPE_CHECKING:
    from generators.base import GeneratorInfo
    from guard.signing.keys import ContentSigner

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC_SOURCE_TYPES + "trainedAlgorithmicMedia"
# IPTC digital source types that declare generative-AI content (made by, or composited with, a trained model).
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
RECORD_ASSERTION = "org.genguard.provenance"
SOFT_BINDING_ASSERTION = "c2pa.soft-binding"
SUPPORTED_MIME = ("image/png", "image/jpeg", "image/webp")
_ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "ED25519")

Status = Literal["present", "absent", "remote", "unreadable"]


@dataclass(frozen=True)
class C2paReport:
    """What a file's C2PA manifest says, as the reference implementation validates it.

    ``validation_state`` is c2pa-rs's verdict: ``Invalid`` (a hash or signature fails), ``Valid`` (intact, but
    the signer is not on a trust list) or ``Trusted`` (intact and chained to a trust anchor). ``failure_codes``
    are the C2PA status codes that explain it (``signingCredential.untrusted``, ``assertion.dataHash.mismatch``),
    each once, in the order the reader reports them.
    """

    status: Status
    validation_state: str | None = None
    failure_codes: tuple[str, ...] = ()
    ai_generated: bool = False
    digital_source_type: str | None = None
    generator: dict[str, Any] | None = None  # the softwareAgent of the creating action, or the claim generator
    record_ref: dict[str, Any] | None = None
    soft_binding: dict[str, Any] | None = None
    signer: dict[str, Any] | None = None  # issuer, common name, algorithm, signing time
    remote_url: str | None = None
    error: str | None = None
    assertions: tuple[str, ...] = ()  # labels in the active manifest

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failure_codes"] = list(self.failure_codes)
        data["assertions"] = list(self.assertions)
        return data


# -- signing ---------------------------------------------------------------------------------------------------


def sign_image(
    image_bytes: bytes,
    mime: str,
    signer: ContentSigner,
    *,
    generator_info: GeneratorInfo | Mapping[str, Any],
    record_ref: Mapping[str, Any],
    watermark: Mapping[str, Any] | None = None,
    timestamp_url: str | None = None,
) -> bytes:
    """Return ``image_bytes`` with a signed C2PA manifest embedded (pixels untouched).

    ``record_ref`` must hold ``record_id``; ``log`` (origin, index) is added when known. ``watermark`` is the
    record's watermark entry (``scheme``, ``key_id``, ``payload``); when given, the manifest carries a soft
    binding to it. ``signer`` is a ``guard.keys.ContentSigner``: ``KeyStore.content_signer()`` or your own object
    with ``algorithm``, ``certificate_chain_pem`` and ``sign(data) -> signature`` (DER or raw ECDSA) for a KMS.
    """
    import c2pa

    if mime not in SUPPORTED_MIME:
        raise InputError(f"cannot sign {mime or 'unknown type'} with C2PA here; supported: {', '.join(SUPPORTED_MIME)}")
    if not record_ref.get("record_id"):
        raise ValueError("record_ref needs a record_id")
    manifest = build_manifest(mime, generator_info=generator_info, record_ref=record_ref, watermark=watermark)
    c2pa_signer = _c2pa_signer(signer, timestamp_url)
    context = c2pa.Context(settings=c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
    out = io.BytesIO()
    try:
        with c2pa.Builder(manifest, context=context) as builder:
            builder.sign(c2pa_signer, mime, io.BytesIO(image_bytes), out)
    except c2pa.C2paError as exc:
        message = " ".join(str(exc).split())  # c2pa-rs puts the reason (e.g. a missing EKU) on later lines
        if any(word in message for word in ("certificate", "signingCredential", "Signature", "signature")):
            raise KeysError(f"C2PA rejected the signing certificate or signature: {message}") from None
        raise InputError(f"cannot embed a C2PA manifest in this {mime} image: {message}") from None
    finally:
        c2pa_signer.close()
    return out.getvalue()


def build_manifest(
    mime: str,
    *,
    generator_info: GeneratorInfo | Mapping[str, Any],
    record_ref: Mapping[str, Any],
    watermark: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest definition ``sign_image`` signs (c2pa-rs ``ManifestDefinition`` JSON)."""
    info = generator_info.to_dict() if hasattr(generator_info, "to_dict") else dict(generator_info)
    agent: dict[str, Any] = {"name": str(info.get("model_id") or info.get("name") or "unknown")}
    if info.get("revision"):
        agent["version"] = str(info["revision"])
    if info.get("name"):
        agent["org.genguard.backend"] = str(info["name"])
    if info.get("weights_sha256"):
        agent["org.genguard.weights_sha256"] = str(info["weights_sha256"])
    assertions: list[dict[str, Any]] = [
        {
            "label": "c2pa.actions",
            "data": {
                "actions": [
                    {
                        "action": "c2pa.created",
                        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                        "softwareAgent": agent,
                    }
                ]
            },
        }
    ]
    if watermark is not None:
        assertions.append({"label": SOFT_BINDING_ASSERTION, "data": soft_binding(watermark)})
    assertions.append({"label": RECORD_ASSERTION, "data": json.loads(json.dumps(dict(record_ref), default=str))})
    return {
        "claim_generator_info": [{"name": "genguard", "version": _version()}],
        "format": mime,
        "assertions": assertions,
    }


def soft_binding(watermark: Mapping[str, Any]) -> dict[str, Any]:
    """A C2PA soft-binding assertion for our watermark.

    ``alg`` names the watermark scheme, and the one block's ``value`` is the payload the watermark decodes to
    (base64 of its bytes; a hex ``payload`` string is taken as those bytes), covering the whole image (empty
    ``scope``). A reader that decodes the watermark from the pixels
    can match it to this value; one that finds the value can look the image up by its mark.
    """
    payload = watermark.get("payload")
    if isinstance(payload, bytes):
        raw = payload
    elif isinstance(payload, str):
        raw = bytes.fromhex(payload) if _is_hex(payload) else payload.encode()
    else:
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return {
        "alg": str(watermark.get("scheme") or "org.genguard.image-watermark"),
        "blocks": [{"scope": {}, "value": base64.b64encode(raw).decode()}],
        "name": "genguard invisible image watermark (key id " + str(watermark.get("key_id", "?")) + ")",
    }


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


def _c2pa_signer(signer: ContentSigner, timestamp_url: str | None):
    import c2pa

    algorithm = str(getattr(signer, "algorithm", "ES256")).upper()
    if algorithm not in _ALGORITHMS:
        raise KeysError(f"C2PA cannot sign with {algorithm}; use one of {', '.join(_ALGORITHMS)}")
    chain = signer.certificate_chain_pem
    private_key = getattr(signer, "private_key_pem", None)
    try:
        if private_key is not None:
            info = c2pa.C2paSignerInfo(algorithm.lower().encode(), chain, private_key, timestamp_url)
            return c2pa.Signer.from_info(info)
        return c2pa.Signer.from_callback(
            signer.sign, getattr(c2pa.C2paSigningAlg, algorithm), chain.decode(), timestamp_url
        )
    except c2pa.C2paError as exc:
        raise KeysError(f"C2PA cannot use the content signer: {str(exc).splitlines()[0]}") from None


# -- reading ---------------------------------------------------------------------------------------------------


def read_manifest(
    source: str | Path | bytes,
    *,
    mime: str | None = None,
    trust_anchors_pem: bytes | str | None = None,
) -> C2paReport:
    """Read and validate the C2PA manifest of an image, with remote manifests never fetched.

    ``trust_anchors_pem`` (one or more PEM CA certificates) makes signers that chain to them ``Trusted``.
    A missing file raises ``InputError``; everything about the file's content is reported, never raised.
    """
    import c2pa

    data = _read_source(source)
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False}}
    if trust_anchors_pem:
        anchors = trust_anchors_pem.decode() if isinstance(trust_anchors_pem, bytes) else trust_anchors_pem
        settings["trust"] = {"user_anchors": anchors}
    try:
        context = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
    except c2pa.C2paError as exc:
        raise InputError(f"trust anchors: not usable PEM certificates: {str(exc).splitlines()[0]}") from None
    try:
        with c2pa.Reader(mime or _sniff_mime(data), io.BytesIO(data), context=context) as reader:
            store = json.loads(reader.json())
            remote_url = None if reader.is_embedded() else reader.get_remote_url()
    except c2pa.C2paError.ManifestNotFound:
        return C2paReport(status="absent")
    except c2pa.C2paError as exc:
        message = str(exc).strip()
        if isinstance(exc, c2pa.C2paError.RemoteManifest) or message.startswith("Remote"):
            url = message.rsplit(" ", 1)[-1] if "http" in message else None
            return C2paReport(status="remote", remote_url=url, error=message)
        return C2paReport(status="unreadable", error=message or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a reader must report a broken manifest, not crash on it
        return C2paReport(status="unreadable", error=f"{type(exc).__name__}: {exc}")
    return _report(store, remote_url)


def _report(store: dict[str, Any], remote_url: str | None) -> C2paReport:
    active = (store.get("manifests") or {}).get(store.get("active_manifest") or "") or {}
    codes = tuple(dict.fromkeys(s["code"] for s in store.get("validation_status") or [] if s.get("code")))
    assertions = {a.get("label", ""): a.get("data") for a in active.get("assertions") or []}
    source_type, agent = _creation(assertions)
    generator = agent or _claim_generator(active)
    binding = next((v for k, v in assertions.items() if k.split("__")[0] == SOFT_BINDING_ASSERTION), None)
    signature = active.get("signature_info")
    return C2paReport(
        status="present",
        validation_state=store.get("validation_state"),
        failure_codes=codes,
        ai_generated=source_type is not None and source_type.rsplit("/", 1)[-1] in AI_SOURCE_TYPES,
        digital_source_type=source_type,
        generator=generator,
        record_ref=assertions.get(RECORD_ASSERTION) if isinstance(assertions.get(RECORD_ASSERTION), dict) else None,
        soft_binding=binding if isinstance(binding, dict) else None,
        signer=dict(signature) if isinstance(signature, dict) else None,
        remote_url=remote_url,
        assertions=tuple(assertions),
    )


def _creation(assertions: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The digital source type and software agent of the manifest's actions, AI-declaring ones first."""
    found: tuple[str | None, dict[str, Any] | None] = (None, None)
    for label, data in assertions.items():
        if not label.startswith("c2pa.actions") or not isinstance(data, dict):
            continue
        for action in data.get("actions") or []:
            source_type = action.get("digitalSourceType")
            if not source_type:
                continue
            agent = action.get("softwareAgent")
            agent = {"name": agent} if isinstance(agent, str) else agent if isinstance(agent, dict) else None
            if source_type.rsplit("/", 1)[-1] in AI_SOURCE_TYPES:
                return source_type, agent
            if found[0] is None:
                found = (source_type, agent)
    return found


def _claim_generator(active: dict[str, Any]) -> dict[str, Any] | None:
    infos = active.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        return dict(infos[0])
    if active.get("claim_generator"):
        return {"name": active["claim_generator"]}
    return None


def _read_source(source: str | Path | bytes) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    from core.imageio import read_file

    return read_file(source)


def _sniff_mime(data: bytes) -> str | None:
    """The MIME type from the magic bytes; ``None`` lets c2pa-rs detect the rest (TIFF, HEIF, AVIF...)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genguard")
    except PackageNotFoundError:
        return "0+unknown"
