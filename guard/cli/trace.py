"""``guard trace FILE``: which logged records made this text or image?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import Finding, InputError
from guard.cli._common import JsonOpt, KeysOpt, LogOpt, open_existing_log
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace(
        file: Annotated[Path, typer.Argument(help="A text or image file (images by suffix).")],
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        max_distance: Annotated[int, typer.Option(help="Largest pHash Hamming distance for images (0-15).")] = 10,
        min_similarity: Annotated[float, typer.Option(
            help="Smallest estimated Jaccard similarity for text near-duplicates.")] = 0.5,
        limit: Annotated[int, typer.Option(help="Most matches to show.")] = 20,
        as_json: JsonOpt = False,
    ) -> None:
        """Find the records that made FILE: exact hash, perceptual hash, watermark, near-duplicate text.

        Each match comes with its similarity and an RFC 6962 inclusion proof. Exit 1 when nothing matches.
        """
        from rich.table import Table

        from guard.signing.keys import KeyStore
        from guard.audit.trace import trace_file

        if not file.is_file():  # the input first: a missing file is named before a missing log
            raise InputError(f"{file}: no such file")
        keys = KeyStore(keys_dir)
        plog = open_existing_log(log, write=True)  # brings the trace index (tables beside the log's) up to date
        report = trace_file(file, plog, keys=keys if keys.directory.is_dir() else None,
                            max_distance=max_distance, min_similarity=min_similarity, limit=limit)

        def human(c) -> None:
            c.print(f"{file}: {report.media}, sha256 {report.query['sha256']}")
            for method, status in report.checks.items():
                c.print(f"  {method}: {status}")
            if not report.matches:
                c.print("[yellow]no logged record matches[/]")
                return
            table = Table("index", "record id", "method", "similarity", "verdict", "model", "time", "proof")
            for m in report.matches:
                d = m.to_dict()
                proof = f"size {d['proof']['tree_size']}" + (" (signed)" if d["proof"]["signed_checkpoint"] else "")
                table.add_row(str(m.index), m.record_id, m.method, f"{m.similarity:.3f}", str(d["verdict"]),
                              str(d["model_id"]), str(d["created_at"]), proof)
            c.print(table)

        emit(report.to_dict(), as_json, human)
        if not report.matches:
            raise Finding(f"{file}: no logged record matches")
