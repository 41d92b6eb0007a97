"""``guard review serve`` (the reviewer web app and public verification) and ``guard users`` (its accounts)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from guard.cli._common import JsonOpt, KeysOpt, LogOpt, open_existing_log
from guard.cli._output import emit, stderr

INSTALL_HINT = "the review app needs its extra: pip install 'genguard[review]'"


def _require_extra() -> None:
    import importlib.util

    from core.errors import GuardError

    missing = [m for m in ("argon2", "jinja2", "python_multipart", "starlette", "uvicorn")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise GuardError(f"{INSTALL_HINT} ({', '.join(missing)} missing)")


def _accounts(log: str | None):
    from guard.review.auth import Accounts
    from guard.review.store import ReviewStore

    return Accounts(ReviewStore(open_existing_log(log, write=True)))


def _read_password(from_stdin: bool) -> str:
    from core.errors import InputError

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise InputError("no terminal to ask for the password on; pass --password-stdin and pipe it in")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError("empty password")
    return password


def register(app: typer.Typer) -> None:
    review = typer.Typer(help="The reviewer web app and the public verification endpoint.", no_args_is_help=True)
    users = typer.Typer(help="Accounts of the review app (stored beside the log).", no_args_is_help=True)
    app.add_typer(review, name="review")
    app.add_typer(users, name="users")

    @review.command("serve")
    def serve(
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8600,
        policy: Annotated[Optional[list[str]], typer.Option(
            help="A policy file the log's records were judged by, to show which rule fired (repeatable; shipped "
                 "policies are known already).")] = None,
        public_field: Annotated[Optional[list[str]], typer.Option(
            help="A record field public verification may show, e.g. created_at or generator.model_id "
                 "(repeatable; default: none beyond the record id, log index and proof).")] = None,
        max_upload_mb: Annotated[float, typer.Option(help="Largest file public verification accepts.")] = 16.0,
        verify_per_minute: Annotated[int, typer.Option(help="Public verifications a minute per client address.")
                                     ] = 20,
        no_checkpoint: Annotated[bool, typer.Option(
            "--no-checkpoint", help="Do not sign a checkpoint after each reviewer decision.")] = False,
        no_self_test: Annotated[bool, typer.Option(
            "--no-self-test", help="Compliance pages do not measure the image watermark.")] = False,
        rebuild_index: Annotated[bool, typer.Option(
            "--rebuild-index", help="Rebuild the review index from the log before serving.")] = False,
        proxy_headers: Annotated[bool, typer.Option(
            "--proxy-headers", help="Trust X-Forwarded-For/-Proto from a reverse proxy on this host (TLS).")] = False,
    ) -> None:
        """Serve the review app: incidents, the log, records, decisions, compliance and bias pages for signed-in
        reviewers, and /verify for anyone. Add accounts with `guard users add`."""
        _require_extra()
        import uvicorn
        from rich.progress import Progress

        from core.errors import InputError
        from guard.review.app import ReviewConfig, create_app

        if not 1 <= verify_per_minute <= 10_000 or max_upload_mb <= 0:
            raise InputError("--verify-per-minute must be 1-10000 and --max-upload-mb positive")
        config = ReviewConfig(log=log, keys=keys_dir, policies=tuple(policy or ()),
                              public_fields=tuple(public_field or ()), max_upload_bytes=int(max_upload_mb * 2**20),
                              verify_per_minute=verify_per_minute, checkpoint_decisions=not no_checkpoint,
                              self_test=not no_self_test)
        asgi = create_app(config)
        state = asgi.app.state.review
        if rebuild_index:
            state.store.rebuild()
        if not state.accounts.list():
            stderr.print("[yellow]note[/]: no accounts yet; add one with `guard users add NAME --role admin`")
        with Progress(console=stderr, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("indexing the log for review", total=None)
            done = state.store.catch_up(progress=lambda n, total: bar.update(task, completed=n, total=total))
        if done.indexed:
            stderr.print(f"indexed {done.indexed:,} records for review in {done.seconds:.1f} s")
        stderr.print(f"review app for {state.log.display_url} on http://{host}:{port} (public: /verify)")
        uvicorn.run(asgi, host=host, port=port, log_level="warning", proxy_headers=proxy_headers,
                    server_header=False)

    @users.command("add")
    def add(
        username: Annotated[str, typer.Argument(help="User name (lower-case letters, digits, . _ -).")],
        role: Annotated[str, typer.Option(help="reviewer or admin.")] = "reviewer",
        password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                     help="Read the password from standard input.")] = False,
        replace: Annotated[bool, typer.Option("--replace", help="Set a new password and role for an existing user "
                                              "(ends their sessions).")] = False,
        log: LogOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Add a reviewer or admin (argon2id password hash, stored beside the log). Asks for the password."""
        _require_extra()
        accounts = _accounts(log)
        user = accounts.add(username, _read_password(password_stdin), role, replace=replace)
        emit({"username": user.username, "role": user.role}, as_json,
             lambda c: c.print(f"{'updated' if replace else 'added'} {user.role} {user.username}"))

    @users.command("list")
    def list_users(log: LogOpt = None, as_json: JsonOpt = False) -> None:
        """List the accounts."""
        _require_extra()
        rows = [{"username": u.username, "role": u.role, "active": u.active, "created_at": u.created_at}
                for u in _accounts(log).list()]

        def human(c) -> None:
            for r in rows:
                c.print(f"{r['username']}\t{r['role']}\t{'active' if r['active'] else 'disabled'}\t{r['created_at']}")

        emit(rows, as_json, human)

    @users.command("disable")
    def disable(username: Annotated[str, typer.Argument()], log: LogOpt = None, as_json: JsonOpt = False) -> None:
        """Disable an account and end its sessions (its decisions stay in the log)."""
        _require_extra()
        _accounts(log).set_active(username, False)
        emit({"username": username, "active": False}, as_json, lambda c: c.print(f"disabled {username}"))

    @users.command("remove")
    def remove(username: Annotated[str, typer.Argument()], log: LogOpt = None, as_json: JsonOpt = False) -> None:
        """Remove an account (its decisions stay in the log, under its name)."""
        _require_extra()
        _accounts(log).remove(username)
        emit({"username": username, "removed": True}, as_json, lambda c: c.print(f"removed {username}"))

