"""``guard demo``: one guarded generation end to end, printing where its record, signature and log are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, allow_downloads_option
from guard.cli._output import emit, stderr


ModelDownloadsOpt = allow_downloads_option(
    "models not installed or cached from the Hugging Face hub (or set GUARD_ALLOW_DOWNLOADS=1; without "
    "either the demo opens no network connection)")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        home: Annotated[Optional[Path], typer.Option(help="Where keys, log and outputs go (default: $GUARD_HOME).")]
        = None,
        allow_downloads: ModelDownloadsOpt = False,
        tiny: Annotated[bool, typer.Option(
            "--tiny", help="Use tiny random-weight models throughout (seconds; meaningless words and scores).")]
        = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Guarded text and image generation end to end: scores, watermark, signature, log, verification.

        Real text needs SmolLM2 installed (`guard models install smollm2`, which `make demo` runs); without it
        the demo uses tiny random-weight models and says so."""
        from guard.demo.run import run_demo

        summary = run_demo(home, say=stderr.print, allow_downloads=allow_downloads, tiny=tiny)
        emit(summary, as_json, lambda c: _human(c, summary))
        if not summary["log_verification"]["ok"]:
            raise Finding("the demo's log does not verify")


def _human(c, summary: dict[str, Any]) -> None:
    home = summary["home"]
    c.rule("guarded generation, end to end")
    t = summary["text"]
    c.print(f"[bold]text[/]    verdict {t['verdict']}, record #{t['record_index']}")
    if "file" in t:
        import textwrap

        c.print(f"  prompt     {t['prompt']}")
        c.print(textwrap.indent(textwrap.fill(" ".join(t["text"].split()), 100), "  │ "), markup=False,
                highlight=False)
        c.print(f"  output     {t['file']}")
        c.print(f"  signature  {t['signature']} (DSSE envelope, in-toto Statement)")
        tox = ", ".join(f"{k} {v:.3f}" for k, v in sorted(t["toxicity"].items()))
        c.print(f"  toxicity   {tox}")
        w = t["watermark"]
        c.print(f"  watermark  z = {w['z_score']:.2f}, p = {w['p_value']:.2e} over {w['num_tokens_scored']} tokens "
                f"→ {'detected' if w['detected'] else 'not detected'}")
    i = summary["image"]
    c.print(f"[bold]image[/]   verdict {i['verdict']}, record #{i['record_index']}")
    if "file" in i:
        c.print(f"  output     {i['file']} (C2PA manifest embedded; invisible watermark carries record "
                f"{i['record_id']})")
    f = summary["face"]
    if "skipped" in f:
        c.print(f"[bold]GAN face[/] skipped: {f['skipped']}")
    else:
        c.print(f"[bold]GAN face[/] verdict {f['verdict']}, record #{f['record_index']} ({f.get('generator')}; "
                f"{f.get('data_licence')})")
        if "file" in f:
            label = (f["disclosure"] or {}).get("visible_label")
            c.print(f"  output     {f['file']}: {len(f['faces'])} face(s) found → "
                    + (f"disclosure recorded, visible label {label!r}" if f["disclosure"] else "no disclosure")
                    + "; watermark, C2PA manifest, logged")
    v = summary["log_verification"]
    c.print(f"[bold]log[/]     {summary['log']}: {v['size']} records, {v['checkpoints']} signed checkpoints, "
            f"verification {'[green]ok[/]' if v['ok'] else '[red]FAILED[/]'}")
    c.print(f"[bold]keys[/]    {summary['keys']}")
    c.rule("check it yourself")
    prefix = f"GUARD_HOME={home} .venv/bin/guard"
    for cmd in ("log verify", "log show --last 5", f"verify {home}/outputs/answer.txt --trust {home}/keys/ca.pem",
                f"verify {home}/outputs/lighthouse.png --trust {home}/keys/ca.pem",
                *([f"verify {home}/outputs/face.png --trust {home}/keys/ca.pem"] if "file" in summary["face"] else [])):
        c.print(f"  {prefix} {cmd}")
