"""``guard works``: register the protected works (texts, images) that outputs must not reproduce."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from guard.cli._common import JsonOpt
from guard.cli._output import emit

WorksOpt = Annotated[Optional[Path], typer.Option(
    "--works", envvar="GUARD_WORKS", help="Registry folder or file. Default: $GUARD_HOME/works.")]


def register(app: typer.Typer) -> None:
    works_app = typer.Typer(help="Register protected works for the copyright detector.")
    app.add_typer(works_app, name="works")

    @works_app.command("add")
    def add(
        paths: Annotated[list[Path], typer.Argument(help="Text or image files, or folders of them.")],
        works: WorksOpt = None,
        name: Annotated[Optional[str], typer.Option(help="Name of the work (one file only).")] = None,
        semantic_model: Annotated[Optional[str], typer.Option(
            help="Sentence encoder folder for paraphrase matching (e.g. $(guard models path minilm)); the "
                 "copyright detector's semantic_model option must name the same one.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Fingerprint works into the registry (the works themselves are not copied)."""
        from core.errors import GuardError, InputError
        from guard.audit.works import add_paths, open_store

        encoder = None
        if semantic_model is not None:
            from detectors.sentence_encoder import SentenceEncoder

            encoder = SentenceEncoder(semantic_model)
        store = open_store(works, create=True)
        try:
            added = add_paths(store, paths, name=name, encoder=encoder)
        except GuardError:
            raise
        except (OSError, ValueError) as exc:  # an encoder folder that transformers cannot load
            raise InputError(f"--semantic-model {semantic_model}: {exc}") from None
        data = {"registry": str(store.path), "works": [{**w.to_dict(), "new": new} for w, new in added]}

        def human(c) -> None:
            for w, new in added:
                c.print(f"{'added' if new else 'already registered'}: #{w.id} {w.name} ({w.kind}, sha256 "
                        f"{w.sha256[:16]}…)")
            c.print(f"registry: {store.path}; use it in a policy as "
                    f"`- detector: copyright` with `options: {{works: {store.path.parent}}}`")

        emit(data, as_json, human)

    @works_app.command("list")
    def list_(works: WorksOpt = None, as_json: JsonOpt = False) -> None:
        """List the registered works."""
        from rich.table import Table

        from guard.audit.works import open_store

        store = open_store(works)
        items = store.works()
        data = {"registry": str(store.path), "works": [w.to_dict() for w in items]}

        def human(c) -> None:
            table = Table("id", "name", "kind", "words", "sha256", "added")
            for w in items:
                table.add_row(str(w.id), w.name, w.kind, str(w.words or ""), w.sha256[:16] + "…", w.added_at)
            c.print(table)

        emit(data, as_json, human)

    @works_app.command("remove")
    def remove(work_id: Annotated[int, typer.Argument(help="Id shown by `guard works list`.")],
               works: WorksOpt = None, as_json: JsonOpt = False) -> None:
        """Remove a work from the registry."""
        from core.errors import InputError
        from guard.audit.works import open_store

        if not open_store(works).remove(work_id):
            raise InputError(f"no work with id {work_id}")
        emit({"removed": work_id}, as_json, lambda c: c.print(f"removed work #{work_id}"))
