"""The image half of the pipeline's last steps: invisible watermark, then a signed C2PA manifest."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from guard import artifact as artifacts


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def finalize_image(guard, generator, rec, image) -> tuple[dict[str, Any] | None, bytes, Any]:
    """Watermark ``image`` with the record id, sign it into a PNG with C2PA, and update ``rec`` to match.

    Returns (manifest summary or None, PNG file bytes, the watermarked image).
    """
    policy = guard.policy
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
