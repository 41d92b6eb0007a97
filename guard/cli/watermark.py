"""``guard watermark embed|detect``: the invisible image watermark, keyed by the secret from ``guard keys init``.

Exit codes: 0 done (embed) or mark found (detect); 1 no mark found (a finding, as ``grep`` does it);
2 bad input (unreadable image, bad record id, missing keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, KeysOpt, check_out, keystore
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    wm = typer.Typer(help="Embed and detect the invisible image watermark.")
    app.add_typer(wm, name="watermark")

    @wm.command("embed")
    def embed(
        image: Annotated[Path, typer.Argument(help="Image to mark (PNG, JPEG, WebP, TIFF).")],
        out: Annotated[Path, typer.Option("--out", help="Where to write the marked image; format from suffix.")],
        record_id: Annotated[
            Optional[str], typer.Option("--record-id", help="16 hex digits to carry (default: a new random id).")
        ] = None,
        strength: Annotated[float, typer.Option(min=0.1, max=4.0, help="Residual scale; 1.0 ≈ 40.5 dB PSNR.")] = 1.0,
        flat_level: Annotated[float, typer.Option(min=0.0, max=255.0, help=(
            "Spare regions flatter than this local contrast (8-bit levels; 0: off): cleaner skies, "
            "less robust to WebP."))] = 16.0,
        keys_dir: KeysOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Embed a payload (the key id and a record id) that survives JPEG, resizing, cropping and blur."""
        import numpy as np

        from core.errors import InputError
        from guard.provenance.record import new_record_id
        from guard.watermark import image as wm_image
        from core.imageio import load_image as open_image, save_image

        check_out(out)
        store = keystore(keys_dir)
        source = open_image(image)
        try:
            payload = wm_image.WatermarkPayload.for_record(record_id or new_record_id(), store.watermark_key_id())
        except ValueError as exc:
            raise InputError(f"--record-id: {exc}") from None
        marked = wm_image.embed(source, payload, store.watermark_secret(), strength=strength, flat_level=flat_level)
        save_image(marked, out, icc_profile=source.info.get("icc_profile"))
        before = np.asarray(source.convert(marked.mode), dtype=np.float64)
        mse = float(np.mean((np.asarray(marked, dtype=np.float64) - before) ** 2))
        result = {
            "image": str(image),
            "out": str(out),
            "scheme": wm_image.SCHEME,
            "payload": payload.to_dict(),
            "key_id": payload.key_id,
            "record_id": payload.record_id,
            "psnr_db": round(10 * np.log10(255.0**2 / mse), 2) if mse > 0 else None,
        }
        emit(
            result,
            as_json,
            lambda c: c.print(
                f"[green]marked[/] {out}: record {payload.record_id}, key {payload.key_id}, "
                f"PSNR {result['psnr_db']} dB"
            ),
        )

    @wm.command("detect")
    def detect(
        image: Annotated[Path, typer.Argument(help="Image to read the watermark from.")],
        keys_dir: KeysOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Read the payload if this key's mark is present; exit 1 if it is not."""
        from guard.watermark import image as wm_image
        from core.imageio import load_image as open_image

        source = open_image(image)  # the input first: a missing file is named before missing keys
        result = wm_image.detect(source, keystore(keys_dir).watermark_secret())
        data = {"image": str(image), **result.to_dict()}

        def human(console) -> None:
            if result.found:
                console.print(
                    f"[green]watermark found[/] in {image}: record {result.payload.record_id}, "
                    f"key {result.payload.key_id}; {result.bit_errors_corrected}/{result.coded_bits} coded bits "
                    f"corrected, confidence {result.confidence:.2f}, false-alarm bound "
                    f"{result.false_alarm_probability:.1e}"
                )
            else:
                console.print(f"[yellow]no watermark[/] for this key in {image} (best sync z {result.sync_z:.1f})")

        emit(data, as_json, human)
        if not result.found:
            raise Finding(f"{image}: no watermark for this key")
