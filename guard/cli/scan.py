"""``guard scan PATH...``: deepfake scores, C2PA status and watermark for images, text detectors for text files.

Detectors come from a policy (``--policy``: its image and text detector rules and their thresholds) and/or the
deepfake options on the command line. Output: a summary for people; ``--json`` (one document) or ``--jsonl``
(one record per line, as files finish) for machines; ``--resume FILE`` appends records to a JSONL file and
skips files whose content hash is already in it. Exit codes: 0 nothing flagged, 1 something flagged (a finding),
2 bad input (a missing path, unusable detector options) or a file that could not be read (corrupt, empty, too
large): those are reported and the rest are still scanned, but a scan that could not see every file does not
pass, as ``grep`` exits 2 on an unreadable file whatever it matched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from guard.cli._common import JsonOpt, KeysOpt
from guard.cli._output import emit, stderr
from guard.cli.detector import (
    DETECTOR,
    AggregateOpt,
    BackendOpt,
    BatchOpt,
    CalibrationOpt,
    CheckpointOpt,
    DeviceOpt,
    DtypeOpt,
    FacesOpt,
    FakeLabelOpt,
    ModelOpt,
    PolicyOpt,
    SideOpt,
    WorkersOpt,
    build_detector,
    detector_options,
)
from core.errors import Finding, InputError, UnreadableInputs


def _rules(policy: str | None, cli_options: dict[str, Any]):
    """Image and text rules from the policy, plus the deepfake detector configured on the command line."""
    from detectors import registry as detection
    from guard.pipeline.checker import Checker
    from guard import policy as policies
    from guard.audit.scan import Rule

    image_rules: list[Rule] = []
    text_rules: list[Rule] = []
    seen: set[str] = set()
    if policy:
        loaded = policies.load(policy)
        checker = Checker()
        for rule in (*loaded.stages.output, *loaded.stages.prompt):
            if rule.detector in seen:
                continue
            seen.add(rule.detector)
            modalities = detection.detector_class(rule.detector).modalities
            name = rule.detector
            if rule.detector == DETECTOR:
                detector = build_detector({**rule.options, **cli_options})
            else:
                # the rule's own detector, or its fallback when that one cannot load here
                name, detector, _ = checker.scorer(rule, load=rule.fallback is not None)
            target = image_rules if "image" in modalities else text_rules
            target.append(Rule(name, detector, dict(rule.thresholds)))
    if DETECTOR not in seen and cli_options.get("backend"):
        image_rules.append(Rule(DETECTOR, build_detector(cli_options)))
    return image_rules, text_rules


def _keys(keys_dir: Path | None) -> tuple[bytes | None, bytes | None]:
    """The watermark secret and our CA certificate, when a key store is there (else neither is used)."""
    from guard.signing.keys import KeyStore

    store = KeyStore(keys_dir)
    if not store.exists():
        return None, None
    return store.watermark_secret(), store.ca_certificate_pem()


def register(app: typer.Typer) -> None:
    @app.command("scan")
    def scan(
        paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are searched recursively).")],
        as_jsonl: Annotated[bool, typer.Option("--jsonl", help="Print one JSON record per file as it is done.")] = False,
        resume: Annotated[Optional[Path], typer.Option("--resume", help="JSONL file: skip files already in it, "
                                                       "append new records to it.")] = None,
        provenance: Annotated[bool, typer.Option("--provenance/--no-provenance", help="Report C2PA status and "
                                                 "our watermark for images.")] = True,
        keys: KeysOpt = None,
        policy: PolicyOpt = None, backend: BackendOpt = None, model: ModelOpt = None, checkpoint: CheckpointOpt = None,
        fake_label: FakeLabelOpt = None, calibration: CalibrationOpt = None, faces: FacesOpt = None,
        side: SideOpt = None, aggregate: AggregateOpt = None, device: DeviceOpt = None, dtype: DtypeOpt = None,
        batch_size: BatchOpt = None, workers: WorkersOpt = None, as_json: JsonOpt = False,
    ) -> None:
        """Scan images and text files: deepfake scores, C2PA status, watermark, text detectors."""
        from guard.audit import scan as scanner

        if as_json and as_jsonl:
            raise InputError("--json and --jsonl are exclusive: pick one output format")
        files_total = len(scanner.expand(paths))  # fails early, before models load, on a missing path
        cli_options = detector_options(None, backend=backend, model=model, checkpoint=checkpoint,
                                       fake_label=fake_label, calibration=calibration, faces=faces, side=side,
                                       aggregate=aggregate, device=device, dtype=dtype, batch_size=batch_size,
                                       workers=workers)
        if resume is not None and resume.is_dir():
            raise InputError(f"--resume {resume}: is a folder; give the JSONL file of an earlier scan")
        skip = scanner.already_scanned(resume) if resume else set()  # before any model loads
        image_rules, text_rules = _rules(policy, cli_options)
        if not image_rules:
            stderr.print("note: no deepfake detector ran (none configured: pass --backend, or a --policy with a "
                          "deepfake rule); images are only checked to decode, and for C2PA and watermark")
        secret, anchors = _keys(keys) if provenance else (None, None)
        settings = scanner.ScanSettings(image_rules=image_rules, text_rules=text_rules, watermark_secret=secret,
                                        trust_anchors_pem=anchors, provenance=provenance)
        records: list[dict[str, Any]] = []
        sink = _open_resume(resume) if resume else None
        watches = scanner.ShiftWatch.for_rules(image_rules)

        def on_record(record: dict[str, Any]) -> None:
            for watch in watches:
                watch.add(record)
            line = json.dumps(record, sort_keys=True, default=str)
            if sink is not None:
                sink.write(line + "\n")
                sink.flush()
            if as_jsonl:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            else:
                records.append(record)

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        try:
            with Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=stderr, transient=True) as bar:
                task = bar.add_task("scan", total=files_total)
                summary = scanner.scan(paths, settings, skip=skip, on_record=on_record,
                                       progress=lambda done, total: bar.update(task, completed=done, total=total))
        finally:
            if sink is not None:
                sink.close()
        notes = [rule.detector.limits for rule in image_rules + text_rules if getattr(rule.detector, "limits", None)]
        shifts = [watch.report() for watch in watches]
        if as_jsonl:
            stderr.print(_summary_line(summary))
            for shift in shifts:
                stderr.print(_shift_line(shift))
            for note in notes:
                stderr.print(f"note: {note}")
        else:
            emit({"summary": summary.to_dict(), "files": records, "notes": notes, "calibration_shift": shifts},
                 as_json, lambda c: _human(c, summary, records, notes, shifts))
        if summary.errors:
            flagged = f"; {summary.flagged} flagged" if summary.flagged else ""
            raise UnreadableInputs(f"{summary.errors} of {summary.files} files could not be read (see the report); "
                                   f"the others were scanned{flagged}")
        if summary.flagged:
            raise Finding(f"{summary.flagged} of {summary.files} files flagged")


def _open_resume(path: Path):
    """Open the JSONL file for appending, starting on a fresh line if the last run was cut mid-record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    needs_newline = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    sink = open(path, "a", encoding="utf-8")
    if needs_newline:
        sink.write("\n")
    return sink


def _summary_line(summary) -> str:
    return (f"{summary.files} files: {summary.ok} scanned, {summary.flagged} flagged, {summary.errors} unreadable, "
            f"{summary.skipped} skipped, {summary.already_scanned} already scanned")


def _shift_line(shift: dict[str, Any]) -> str:
    """One plain line about the calibration's promise for these images."""
    label = "CALIBRATION SHIFT" if shift["shifted"] else "calibration"
    return f"{label} ({shift['detector']}): {shift['message']}"


def _human(console, summary, records: list[dict[str, Any]], notes: list[str], shifts: list[dict[str, Any]]) -> None:
    for record in records:
        if record["status"] == "error":
            console.print(f"[red]unreadable[/] {record['path']}: {record.get('error', '')}")
        elif record.get("flagged"):
            values = ", ".join(f"{s['detector']}:{s['label']}={s['value']:.3f}" for s in record.get("scores", []))
            console.print(f"[yellow]flagged[/] {record['path']}: {values}")
    console.print(_summary_line(summary))
    for shift in shifts:
        console.print(_shift_line(shift), style="bold red" if shift["shifted"] else None, markup=False)
    for note in notes:
        console.print(f"[yellow]note[/]: {note}")
