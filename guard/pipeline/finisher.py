"""The finisher: marks and signs what is handed back, and returns the record to match.

Text gets a DSSE envelope over an in-toto Statement whose predicate is the record (text watermarks are embedded
while sampling, by the generator). Images get, in order, a deepfake disclosure when the policy asks for one and
the image shows faces, the invisible watermark carrying the record id, and a C2PA manifest in a PNG file. Each
step that adds to the record returns a new one (``dataclasses.replace``): the record stays frozen.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from typing import Any

from generators.base import GeneratorInfo
from guard.policy import Disclosure, ImageWatermark, Signing
from guard.provenance import artifact as artifacts
from guard.provenance.record import ProvenanceRecord
from guard.signing.keys import ContentSigner, KeyStore


@dataclass(frozen=True)
class Finished:
    """One output as handed back: its final record, the content, and what signs it."""

    record: ProvenanceRecord
    content: Any  # the text or the (watermarked) image; None when the output is not handed back
    signature: dict[str, Any] | None = None  # DSSE envelope (text) or C2PA manifest summary (images)
    file_bytes: bytes | None = None  # the signed image file (C2PA manifest embedded)


class Finisher:
    """Marks and signs under a policy's ``watermark.image``, ``signing`` and ``disclosure`` settings.

    ``keys`` provides the watermark secret (and the signer, unless ``content_signer`` is given, e.g. a KMS);
    ``log_origin`` names the log in the C2PA manifest's record reference.
    """

    def __init__(self, *, watermark: ImageWatermark, signing: Signing, disclosure: Disclosure, keys: KeyStore,
                 log_origin: str, content_signer: ContentSigner | None = None) -> None:
        self.watermark, self.signing, self.disclosure = watermark, signing, disclosure
        self.keys, self.log_origin = keys, log_origin
        self._content_signer = content_signer

    @property
    def content_signer(self) -> ContentSigner:
        if self._content_signer is None:
            self._content_signer = self.keys.content_signer()
        return self._content_signer

    def finish(self, record: ProvenanceRecord, content: Any, generator: GeneratorInfo) -> Finished:
        """Mark and sign ``content`` (None: nothing is handed back, nothing to sign)."""
        if content is None:
            return Finished(record, None)
        if isinstance(content, str):
            return self._finish_text(record, content)
        return self._finish_image(record, content, generator)

    def _finish_text(self, record: ProvenanceRecord, text: str) -> Finished:
        if self.signing.text == "none":
            return Finished(record, text)
        from guard.signing import dsse

        statement = dsse.statement(record.artifact["sha256"], f"output-{record.record_id}.txt",
                                   record.statement_dict())
        envelope = dsse.sign(statement, self.content_signer)
        signature = {"type": "dsse", "envelope_sha256": dsse.envelope_digest(envelope),
                     "keyid": envelope["signatures"][0]["keyid"]}
        return Finished(replace(record, signature=signature), text, envelope)

    def _finish_image(self, record: ProvenanceRecord, image: Any, generator: GeneratorInfo) -> Finished:
        if self.disclosure.faces:
            record, image = self._disclose_faces(record, image)
        if self.watermark.enabled:
            from guard.watermark.image import SCHEME, WatermarkPayload, embed

            key_id = self.keys.watermark_key_id()
            payload = WatermarkPayload.for_record(record.record_id, key_id)
            image = embed(image, payload, self.keys.watermark_secret(), strength=self.watermark.strength,
                          flat_level=self.watermark.flat_level)
            # The record names what is handed back, not the raw generation.
            record = replace(record, watermark={"scheme": SCHEME, "key_id": key_id,
                                                "payload": payload.to_bytes().hex()},
                             artifact=artifacts.digest(image))
        data = _png_bytes(image)
        if self.signing.image == "none":
            return Finished(record, image, None, data)
        from guard.signing.c2pa import sign_image

        signed = sign_image(
            data,
            "image/png",
            self.content_signer,
            generator_info=generator,
            record_ref={"record_id": record.record_id, "log": {"origin": self.log_origin}},
            watermark=record.watermark,
            timestamp_url=self.signing.timestamp_url,
        )
        signature = {"type": "c2pa", "file_sha256": hashlib.sha256(signed).hexdigest(), "format": "image/png"}
        return Finished(replace(record, signature=signature), image,
                        {"type": "c2pa", "file_sha256": signature["file_sha256"]}, signed)

    def _disclose_faces(self, record: ProvenanceRecord, image: Any) -> tuple[ProvenanceRecord, Any]:
        """Record a deepfake disclosure when the image shows faces, and draw the visible label if asked."""
        from detectors.deepfake.faces import find_faces, finder_id

        faces = find_faces(image)
        if not faces:
            return record, image
        settings = self.disclosure
        record = replace(record, extra={
            **record.extra,
            "faces": [box.to_list() for box in faces],
            "disclosure": {"reason": "realistic human faces", "faces": len(faces), "face_finder": finder_id(),
                           "visible_label": settings.label_text if settings.visible_label else None},
        })
        if settings.visible_label:
            from PIL import ImageDraw

            image = image.convert("RGB")
            draw = ImageDraw.Draw(image)
            size = max(12, image.height // 24)
            margin = size // 3
            box = draw.textbbox((margin, image.height - size - 2 * margin), settings.label_text, font_size=size)
            draw.rectangle((box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), fill=(0, 0, 0))
            draw.text((box[0], box[1]), settings.label_text, fill=(255, 255, 255), font_size=size)
        return record, image


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
