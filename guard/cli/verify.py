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
        trust: Annotated[Optional[Path], typer.Option(help="Trusted certificates (PEM): the operator's CA; "
                                                          "for a text without a key folder, its chain.pem.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check a file's signature and find its provenance record; exit 1 if anything does not check out.

        Without a log of your own (a file you received), the signature is checked against --trust (the
        operator's CA for images, its certificate chain for texts) and the record lookup is skipped.
        """
        from core.errors import InputError

        if not file.is_file():
            raise InputError(f"{file}: no such file")
        if envelope is not None and not envelope.is_file():
            raise InputError(f"--envelope {envelope}: {'is a folder' if envelope.is_dir() else 'no such file'}")
        trust_pem = _trust_anchors(trust) if trust is not None else None
        keys = keystore(keys_dir)
        keys = keys if keys.directory.is_dir() else None
        plog = open_existing_log(log) if log is not None or _default_log_exists() else None
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
            for note in report.get("notes", []):
                c.print(f"  note: {note}")

        emit(report, as_json, human)
        if not report["ok"]:
            problems = report.get("problems") or ["see report"]
            raise Finding(f"{file}: not verified: {problems[0]}")


def _trust_anchors(path: Path) -> bytes:
    """The certificates of ``--trust``, checked to be PEM certificates before anything is verified with them."""
    from cryptography import x509

    from core.errors import InputError

    try:
        data = path.read_bytes()
        x509.load_pem_x509_certificates(data)
    except OSError as exc:
        raise InputError(f"--trust {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError:
        raise InputError(f"--trust {path}: not a PEM certificate file (give the operator's CA or certificate "
                         "chain)") from None
    return data


def _default_log_exists() -> bool:
    """Whether the default log ($GUARD_HOME/provenance.db) is there: without one, the record lookup is skipped."""
    from guard.provenance.log import normalize_url

    return Path(normalize_url(None).removeprefix("sqlite:///")).is_file()
