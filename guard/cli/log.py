"""``guard log``: verify, inspect, prove, witness, erase and export the provenance log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from guard.cli._common import JsonOpt, KeysOpt, LogOpt, check_out, keystore, open_existing_log
from guard.cli._output import emit, stderr
from core.errors import Finding, InputError, VerificationError


def register(app: typer.Typer) -> None:
    log_app = typer.Typer(help="Verify, inspect and prove the provenance log.")
    app.add_typer(log_app, name="log")

    @log_app.command("verify")
    def verify(log: LogOpt = None, keys_dir: KeysOpt = None, as_json: JsonOpt = False) -> None:
        """Recompute every leaf and node, check every checkpoint; exit 1 naming the first bad index."""
        from rich.progress import Progress

        from guard.provenance.verify import verify_log

        plog = open_existing_log(log)
        public_key = keystore(keys_dir).log_public_key()
        with Progress(console=stderr, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("verifying", total=None)
            report = verify_log(plog, public_key, progress=lambda done, total: bar.update(task, completed=done,
                                                                                          total=total))
        data = {"log": plog.display_url, **report.to_dict()}

        def human(c) -> None:
            if report.ok:
                c.print(f"[green]ok[/]: {report.size} records, {report.checkpoints_checked} checkpoints, "
                        f"root {report.root.hex()}")
            else:
                c.print(f"[red]FAILED[/]: first bad index {report.first_bad_index}, "
                        f"first bad checkpoint {report.first_bad_checkpoint}")
                for p in report.problems[:10]:
                    c.print(f"  {p}")

        emit(data, as_json, human)
        if not report.ok:
            raise Finding(f"the log does not verify: first bad index {report.first_bad_index}, "
                          f"first bad checkpoint {report.first_bad_checkpoint}")

    @log_app.command("show")
    def show(
        log: LogOpt = None,
        index: Annotated[Optional[int], typer.Option(help="Show the record at this index.")] = None,
        record_id: Annotated[Optional[str], typer.Option("--record-id", help="Show the record with this id.")] = None,
        last: Annotated[int, typer.Option(min=0, help="Without --index: show the last N records.")] = 10,
        as_json: JsonOpt = False,
    ) -> None:
        """Show records (one by index or id, or the latest ones) and the log's size and latest checkpoint."""
        from rich.markup import escape
        from rich.table import Table

        plog = open_existing_log(log)
        if record_id is not None:
            index = plog.find(record_id)
            if index is None:
                raise InputError(f"no record with id {record_id!r} in {plog.display_url}")
        if index is not None:
            stored = plog.get(index)
            data = {"index": stored.index, "leaf_hash": stored.leaf_hash.hex(), "record": stored.data,
                    "private": stored.private}
            emit(data, as_json, lambda c: c.print_json(json.dumps(data)))
            return
        size = plog.size()
        records = [r.data for r in plog.iter_records(start=max(0, size - last))]
        checkpoint = plog.latest_checkpoint()
        data = {"log": plog.display_url, "size": size, "origin": plog.origin,
                "latest_checkpoint": checkpoint.note if checkpoint else None, "records": records}

        def human(c) -> None:
            c.print(f"{plog.display_url}: {size} records, origin {plog.origin}")
            table = Table("index", "time", "media", "verdict", "model", "record id")
            for r in records:
                table.add_row(str(r["index"]), r["created_at"], r["media_type"].split(";")[0], r["verdict"],
                              str((r.get("generator") or {}).get("model_id")), r["record_id"])
            c.print(table)
            for r in records:  # why each verdict: the rules that fired
                for line in _why(r):
                    c.print(f"{r['index']}: {escape(line)}", soft_wrap=True)

        emit(data, as_json, human)

    @log_app.command("proof")
    def proof(
        index: Annotated[int, typer.Option(help="Leaf index to prove.")],
        log: LogOpt = None,
        size: Annotated[Optional[int], typer.Option(help="Tree size to prove against (default: now).")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Print the RFC 6962 inclusion proof of one record (verified before it is printed)."""
        plog = open_existing_log(log)
        p = plog.inclusion_proof(index, size)
        p.verify()
        data = p.to_dict()
        emit(data, as_json, lambda c: c.print_json(json.dumps(data)))

    @log_app.command("checkpoint")
    def checkpoint(log: LogOpt = None, keys_dir: KeysOpt = None,
                   out: Annotated[Optional[Path], typer.Option(help="Also save the signed note here.")] = None,
                   as_json: JsonOpt = False) -> None:
        """Sign and publish a checkpoint of the current tree; save it to witness the log later."""
        check_out(out)
        plog = open_existing_log(log, write=True)
        signed = plog.checkpoint(keystore(keys_dir).log_private_key())
        if out:
            out.write_text(signed.note)
        data = {"size": signed.checkpoint.size, "root": signed.checkpoint.root.hex(), "note": signed.note}
        emit(data, as_json, lambda c: c.out(signed.note, end=""))

    @log_app.command("consistency")
    def consistency(
        from_file: Annotated[Path, typer.Option("--from", help="A checkpoint note saved earlier.")],
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Prove that the log now extends a checkpoint saved earlier (exit 1 if it does not)."""
        from guard.provenance import merkle
        from guard.provenance.checkpoint import SignedCheckpoint

        try:
            text = from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{from_file}: cannot read checkpoint: {exc}") from None
        try:
            old = SignedCheckpoint.from_text(text)
        except VerificationError as exc:
            raise InputError(f"{from_file}: {exc}") from None
        plog = open_existing_log(log)
        size1 = old.checkpoint.size
        try:
            old.verify(plog.origin, keystore(keys_dir).log_public_key())
            current = plog.size()
            if size1 > current:
                raise VerificationError(f"the log holds {current} records, fewer than the {size1} the checkpoint "
                                        "covers")
            if size1 == 0:
                size2, root2, hashes = current, plog.root()[1], []
            else:
                size2, root2, hashes = plog.consistency_proof(size1)
                merkle.verify_consistency(size1, size2, old.checkpoint.root, root2, hashes)
        except VerificationError as exc:
            emit({"ok": False, "from_size": size1, "problem": str(exc)}, as_json,
                 lambda c: c.print(f"[red]not consistent[/]: {exc}"))
            raise Finding(f"{from_file}: the log does not extend this checkpoint: {exc}") from None
        data = {"ok": True, "from_size": size1, "from_root": old.checkpoint.root.hex(), "to_size": size2,
                "to_root": root2.hex(), "proof": [h.hex() for h in hashes]}
        emit(data, as_json, lambda c: c.print(f"[green]ok[/]: the log at size {size2} extends the checkpoint "
                                             f"at size {size1} ({len(hashes)} proof hashes)"))

    @log_app.command("erase")
    def erase(
        index: Annotated[int, typer.Option(help="Record index.")],
        field: Annotated[str, typer.Option(help="Private field to erase, e.g. prompt.")],
        log: LogOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Erase a private field (right to erasure); every hash, and so the log's verification, is unchanged."""
        plog = open_existing_log(log, write=True)
        private = sorted(plog.get(index).data.get("commitments") or {})
        if field not in private:
            raise InputError(f"record {index} has no private field {field!r} "
                             f"(it has: {', '.join(private) or 'none'})")
        erased = plog.erase(index, field)
        data = {"index": index, "field": field, "erased": erased}
        emit(data, as_json, lambda c: c.print(f"{'erased' if erased else 'nothing to erase:'} {field} of record {index}"))

    @log_app.command("export")
    def export(
        log: LogOpt = None,
        fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
        out: Annotated[Optional[Path], typer.Option(help="Output file (default: stdout).")] = None,
        since: Annotated[Optional[str], typer.Option(help="Records from this time on (ISO 8601, UTC if no zone).")
                         ] = None,
        until: Annotated[Optional[str], typer.Option(help="Records before this time (exclusive).")] = None,
        verdict: Annotated[Optional[list[str]], typer.Option(help="Only this verdict (repeatable).")] = None,
        model: Annotated[Optional[list[str]], typer.Option(help="Only this generator model id (repeatable).")
                         ] = None,
        detector: Annotated[Optional[list[str]], typer.Option(
            help="Only records this detector scored or failed on (repeatable).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Without --out: the records as JSON Lines on stdout "
                                              "(the default format). With --out: a JSON summary on stdout.")] = False,
    ) -> None:
        """Export records in index order with their leaf hashes, filtered by time, verdict, model and detector."""
        from guard.audit.export import Filters, export as export_records

        if as_json and out is None and fmt != "jsonl":
            raise InputError(f"--json without --out writes JSON Lines to stdout, not {fmt}: pass --out for {fmt}")
        filters = Filters.parse(since=since, until=until, verdicts=verdict or (), models=model or (),
                                detectors=detector or ())
        check_out(out)
        count = export_records(open_existing_log(log), fmt, out, filters)
        if out:
            emit({"exported": count, "format": fmt, "out": str(out)}, as_json,
                 lambda c: stderr.print(f"exported {count} records to {out}"))


def _why(record: dict) -> list[str]:
    """The rules that fired on a record, one line each (``violations``; the error when the attempt raised)."""
    lines = []
    for v in record.get("violations") or []:
        if "fail" in v:
            lines.append(f"{v.get('stage')} {v.get('rule')} failed (fail: {v['fail']}) → {v.get('action')}")
        else:
            score = v.get("score")
            score = f"{score:.3g}" if isinstance(score, (int, float)) else str(score)
            lines.append(f"{v.get('stage')} {v.get('detector')}:{v.get('label')} {score} ≥ {v.get('threshold')} → "
                         f"{v.get('action')}")
    return lines + [f"{e.get('stage')} error: {e.get('error')}" for e in record.get("errors") or []
                    if e.get("stage") == "generate"]
