"""``guard models``: install, verify and list real model weights that ship as Python packages."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from guard.cli._common import JsonOpt
from guard.cli._output import emit

NamesArg = Annotated[Optional[list[str]], typer.Argument(help="Package names (default: smollm2 and minilm).",
                                                         show_default=False)]


def register(app: typer.Typer) -> None:
    models = typer.Typer(
        help="Real model weights from the package index, for machines that cannot reach a model hub. "
             "Only `guard models install` downloads anything; the toolkit never fetches weights by itself.",
        no_args_is_help=True,
    )
    app.add_typer(models, name="models")

    @models.command("list")
    def list_(as_json: JsonOpt = False) -> None:
        """Known weights packages: installed version, folder, licence and what uses them."""
        from guard.models import status

        rows = status()

        def human(c) -> None:
            for r in rows:
                state = f"[green]installed {r['installed']}[/]" if r["installed"] else "[dim]not installed[/]"
                c.print(f"[bold]{r['name']}[/]  {r['package']}  {state}  licence: {r['licence']}")
                c.print(f"  {r['what']}; used by {r['used_by']}")
                if r["folder"]:
                    c.print(f"  folder: {r['folder']}")
                if r.get("converted"):
                    c.print(f"  converted: {r['converted']}")

        emit(rows, as_json, human)

    @models.command("install")
    def install(
        names: NamesArg = None,
        all_: Annotated[bool, typer.Option("--all", help="Install every known package.")] = False,
        force: Annotated[bool, typer.Option("--force", help="Reinstall even when the version is there.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Download and install weights packages with pip (this DOES use the network: the package index), then
        verify each weights file's SHA-256 and convert GGUF files once into $GUARD_HOME/models."""
        from guard.cli._output import stderr
        from core.errors import InputError
        from guard.models import DEFAULT_INSTALL, PACKAGES, install as run_install, model_path, package

        if all_ and names:
            raise InputError(f"give package names or --all, not both (got --all and {', '.join(names)})")
        pkgs = list(PACKAGES) if all_ else [package(n) for n in (names or DEFAULT_INSTALL)]
        run_install(pkgs, force=force, echo=lambda line: stderr.print(f"[dim]pip {line}[/]"))
        paths = {}
        for pkg in pkgs:
            if pkg.model_path.endswith(".gguf"):
                stderr.print(f"{pkg.name}: converting the GGUF file once (about 30 s)…")
            paths[pkg.name] = str(model_path(pkg.name))
        emit({"installed": paths}, as_json,
             lambda c: [c.print(f"[green]{name}[/] verified: {path}") for name, path in paths.items()])

    @models.command("verify")
    def verify(names: NamesArg = None, as_json: JsonOpt = False) -> None:
        """Recompute the SHA-256 of each installed package's weights files: exit 1 if one differs or is missing."""
        from guard.models import PACKAGES, package, package_folder, verify as check

        pkgs = [package(n) for n in names] if names else [p for p in PACKAGES if package_folder(p)]
        result = {p.name: [{"file": c.path, "ok": c.ok, "sha256": c.actual, "expected": c.expected}
                           for c in check(p)] for p in pkgs}
        ok = all(f["ok"] for files in result.values() for f in files)

        def human(c) -> None:
            if not result:
                c.print("no weights package installed (guard models install)")
            for name, files in result.items():
                for f in files:
                    mark = "[green]ok[/]" if f["ok"] else "[red]MISMATCH[/]"
                    c.print(f"{mark} {name}: {f['file']} {f['sha256'] or 'missing'}")

        emit({"ok": ok, "packages": result}, as_json, human)
        if not ok:
            raise typer.Exit(1)

    @models.command("path")
    def path(name: Annotated[str, typer.Argument(help="Package name, e.g. smollm2 or minilm.")]) -> None:
        """Print the verified folder to load (a GGUF file is converted once, the first time)."""
        from guard.models import model_path

        typer.echo(str(model_path(name)))
