"""``guard keys``: create and show the log key, the content signer chain and the watermark secret."""

from __future__ import annotations

from typing import Annotated

import typer

from guard.cli._common import JsonOpt, KeysOpt, keystore
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Create and inspect signing keys.")
    app.add_typer(keys, name="keys")

    @keys.command("init")
    def init(
        keys_dir: KeysOpt = None,
        force: Annotated[bool, typer.Option("--force", help="Replace existing keys.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Create the log key (Ed25519), a local CA and signer certificate (EC P-256) and the watermark secret."""
        store = keystore(keys_dir)
        written = store.init(force=force)
        emit(
            {"directory": str(store.directory), "files": [str(p) for p in written]},
            as_json,
            lambda c: c.print(f"[green]keys written[/] to {store.directory} (private keys mode 0600)"),
        )

    @keys.command("show")
    def show(keys_dir: KeysOpt = None, log: Annotated[str, typer.Option(help="Log origin to name the key.")] = "",
             as_json: JsonOpt = False) -> None:
        """Show public key material: the signer certificate fingerprint and the watermark key id."""
        import hashlib

        store = keystore(keys_dir)
        cert = store.signer_certificate_pem()
        info = {
            "directory": str(store.directory),
            "signer_certificate_sha256": hashlib.sha256(cert).hexdigest(),
            "watermark_key_id": store.watermark_key_id(),
            "log_public_key": store.path("log.pub").read_text().strip(),
        }
        emit(info, as_json, lambda c: [c.print(f"{k}: {v}") for k, v in info.items()])
