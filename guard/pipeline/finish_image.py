"""The image half of the pipeline's last steps: invisible watermark, then a signed C2PA manifest."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from guard.provenance import artifact as artifacts


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def finalize_image(guard, generator, rec, image) -> tuple[dict[str, Any] | None, bytes, Any]:
    """Watermark ``image`` with the record id, sign it into a PNG with C2PA, and update ``rec`` to match.

    Returns (manifest summary or None, PNG file bytes, the watermarked image).
    """
    policy = guard.policy
    if policy.disclosure.faces:
        image = _disclose_faces(policy.disclosure, rec, image)
    if policy.watermark.image.enabled:
        from guard.watermark.image import SCHEME, WatermarkPayload, embed

        key_id = guard.keys.watermark_key_id()
        payload = WatermarkPayload.for_record(rec.record_id, key_id)
        image = embed(image, payload, guard.keys.watermark_secret(), strength=policy.watermark.image.strength)
        rec.watermark = {"scheme": SCHEME, "key_id": key_id, "payload": payload.to_bytes().hex()}
        rec.artifact = artifacts.digest(image)  # the record names what is handed back, not the raw generation
    data = png_bytes(image)
    if policy.signing.image == "none":
        return None, data, image
    from guard.signing.c2pa import sign_image

    signed = sign_image(
        data,
        "image/png",
        guard.content_signer,
        generator_info=generator.info,
        record_ref={"record_id": rec.record_id, "log": {"origin": guard.log.origin}},
        watermark=rec.watermark,
        timestamp_url=policy.signing.timestamp_url,
    )
    rec.signature = {"type": "c2pa", "file_sha256": hashlib.sha256(signed).hexdigest(), "format": "image/png"}
    return {"type": "c2pa", "file_sha256": rec.signature["file_sha256"]}, signed, image


def _disclose_faces(settings, rec, image):
    """Record a deepfake disclosure when the image shows faces, and draw the visible label if asked."""
    from detectors.deepfake.faces import find_faces

    faces = find_faces(image)
    if not faces:
        return image
    rec.extra["faces"] = [box.to_list() for box in faces]
    rec.extra["disclosure"] = {"reason": "realistic human faces", "faces": len(faces),
                               "visible_label": settings.label_text if settings.visible_label else None}
    if settings.visible_label:
        from PIL import ImageDraw

        image = image.convert("RGB")
        draw = ImageDraw.Draw(image)
        size = max(12, image.height // 24)
        margin = size // 3
        box = draw.textbbox((margin, image.height - size - 2 * margin), settings.label_text, font_size=size)
        draw.rectangle((box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), fill=(0, 0, 0))
        draw.text((box[0], box[1]), settings.label_text, fill=(255, 255, 255), font_size=size)
    return image
