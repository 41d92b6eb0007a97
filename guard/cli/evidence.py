"""``guard evidence`` and ``guard verify-bundle``: one record, proven, checkable offline by anyone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, KeysOpt, LogOpt, check_out, keystore, open_existing_log
from guard.cli._output import emit, stderr


def register(app: typer.Typer) -> None:
    @app.command("evidence")
    def evidence(
        out: Annotated[Path, typer.Option(help="Where to write the bundle (.zip).")],
        index: Annotated[Optional[int], typer.Option(help="Record index.")] = None,
        record_id: Annotated[Optional[str], typer.Option("--record-id", help="Record id instead of index.")] = None,
        artifact: Annotated[Optional[Path], typer.Option(help="Include the output file itself (its digest is "
                                                         "checked against the record).")] = None,
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Write an evidence bundle: record, inclusion proof, signed checkpoint, public key, artifact hash."""
        from core.errors import InputError, VerificationError
        from guard.verify.evidence import build_bundle, verify_bundle

        check_out(out)
        plog = open_existing_log(log, write=True)  # signs a checkpoint when none covers the record yet
        if (index is None) == (record_id is None):
            raise InputError("give exactly one of --index and --record-id")
        if record_id is not None:
            index = plog.find(record_id)
            if index is None:
                raise InputError(f"no record with id {record_id} in {plog.display_url}")
        data = build_bundle(plog, index, keystore(keys_dir), artifact=artifact)
        report = verify_bundle(data)  # never hand out a bundle that does not verify
        if not report.ok:
            raise VerificationError(f"the bundle just built does not verify: {report.problems}")
        out.write_bytes(data)
        summary = {"out": str(out), "bytes": len(data), **report.to_dict()}
        emit(summary, as_json, lambda c: c.print(f"wrote {out}: record {index} proven in a tree of "
                                                 f"{report.tree_size} (signed checkpoint), {len(data)} bytes"))

    @app.command("verify-bundle")
    def verify_bundle_cmd(
        bundle: Annotated[Path, typer.Argument(help="An evidence bundle (.zip).")],
        key: Annotated[Optional[Path], typer.Option(help="Trusted log public key (PEM) to pin.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check an evidence bundle offline; exit 1 if anything in it does not verify."""
        from core.errors import InputError
        from guard.verify.evidence import verify_bundle

        from guard.verify.evidence import MAX_BUNDLE_BYTES

        try:
            if bundle.is_dir():
                raise InputError(f"{bundle}: is a folder, not an evidence bundle")
            if bundle.stat().st_size > MAX_BUNDLE_BYTES:
                raise InputError(f"{bundle}: larger than the {MAX_BUNDLE_BYTES} bytes an evidence bundle may have")
            data = bundle.read_bytes()
            trusted = key.read_bytes() if key else None
        except OSError as exc:
            raise InputError(f"{exc.filename}: cannot read: {exc.strerror}") from None
        report = verify_bundle(data, trusted_key_pem=trusted)
        if report.rejected:
            raise InputError(f"{bundle}: not a well-formed evidence bundle: {report.rejected}")

        def human(c) -> None:
            if report.ok:
                c.print(f"[green]verified[/]: record {report.record.get('record_id')} is entry {report.leaf_index} "
                        f"of {report.origin} (tree size {report.tree_size})")
                for check in report.checks:
                    c.print(f"  ok: {check}")
                if key is None:
                    stderr.print("note: the key came from the bundle itself; pin the log operator's key with --key")
            else:
                c.print(f"[red]NOT verified[/]: {bundle}")
                for problem in report.problems:
                    c.print(f"  [red]problem[/]: {problem}")

        emit(report.to_dict(), as_json, human)
        if not report.ok:
            raise Finding(f"{bundle}: does not verify: {report.problems[0] if report.problems else 'see report'}")
