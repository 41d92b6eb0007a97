"""``guard verify FILE``: does this output check out, and which logged record made it?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import Finding
from core.imageio import image_suffixes
from guard.cli._common import JsonOpt, KeysOpt, LogOpt, keystore, open_existing_log
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        file: Annotated[Path, typer.Argument(help="A text or image output.")],
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        envelope: Annotated[Optional[Path], typer.Option(help="DSSE envelope (default: FILE.dsse.json).")] = None,
        trust: Annotated[Optional[Path], typer.Option(help="Trust anchor CA (PEM) for the signer.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check a file's signature and find its provenance record; exit 1 if anything does not check out."""
        from core.errors import InputError

        if not file.is_file():
            raise InputError(f"{file}: no such file")
        trust_pem = None
        if trust is not None:
            try:
                trust_pem = trust.read_bytes()
            except OSError as exc:
                raise InputError(f"{trust}: cannot read trust anchor: {exc.strerror}") from None
        keys = keystore(keys_dir)
        plog = open_existing_log(log)
        if file.suffix.lower() in image_suffixes():
            from guard.verify.image import verify_image

            report = verify_image(file, keys=keys, log=plog, trust=trust_pem)
        else:
            from guard.verify.text import verify_text

            report = verify_text(file, log=plog, keys=keys, envelope_path=envelope, trust_pem=trust_pem)

        def human(c) -> None:
            status = "[green]verified[/]" if report["ok"] else "[red]NOT verified[/]"
            c.print(f"{status}: {file}")
            for key in ("signature", "ai_generated", "declared_by", "found_via", "record_id", "index", "verdict"):
                if report.get(key) is not None:
                    c.print(f"  {key}: {report[key]}")
            watermark = report.get("watermark")
            if isinstance(watermark, dict):
                c.print(f"  watermark: {'found' if watermark.get('found') else 'not found'}"
                        + (f", record {watermark['record_id']}" if watermark.get("record_id") else ""))
            for problem in report.get("problems", []):
                c.print(f"  [red]problem[/]: {problem}")

        emit(report, as_json, human)
        if not report["ok"]:
            problems = report.get("problems") or ["see report"]
            raise Finding(f"{file}: not verified: {problems[0]}")
