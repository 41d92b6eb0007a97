"""``guard serve``: the OpenAI-compatible gateway, and ``guard serve keys`` for its callers' API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from guard.cli._common import JsonOpt, KeysOpt, LogOpt
from guard.cli._output import emit

ApiKeysOpt = Annotated[
    Optional[Path],
    typer.Option("--api-keys", envvar="GUARD_SERVE_KEYS", help="Callers' key file (hashes only). Default: "
                 "$GUARD_HOME/serve-keys.json."),
]


def register(app: typer.Typer) -> None:
    serve_app = typer.Typer(invoke_without_command=True)
    app.add_typer(serve_app, name="serve", short_help="OpenAI-compatible gateway: a policy in front of a model "
                  "server (and its callers' API keys).")

    @serve_app.callback()
    def serve(
        ctx: typer.Context,
        upstream: Annotated[Optional[str], typer.Option(
            envvar="GUARD_UPSTREAM", help="Base URL of the OpenAI-compatible server to guard, ending in /v1 "
            "(vLLM, Ollama, llama.cpp, a hosted API). The only address the gateway connects to.")] = None,
        upstream_key: Annotated[Optional[str], typer.Option(
            envvar="GUARD_UPSTREAM_KEY", help="API key for the upstream, sent as a bearer token. Prefer the "
            "environment variable to the command line.")] = None,
        model: Annotated[Optional[str], typer.Option(
            help="Serve this transformers model (local folder or hub id) from the gateway itself, instead of "
            "--upstream.")] = None,
        served_model_name: Annotated[Optional[str], typer.Option(
            help="The model name callers use and responses report (default: the --model folder's name).")] = None,
        device: Annotated[str, typer.Option(help="--model: auto, cpu, cuda or cuda:N.")] = "auto",
        concurrency: Annotated[int, typer.Option(
            help="--model: generations run at once; further requests wait for a slot.")] = 4,
        policy: Annotated[str, typer.Option(help="Policy: a shipped name or a YAML file.")] = "default",
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        api_keys: ApiKeysOpt = None,
        host: Annotated[str, typer.Option(help="Address to listen on. Without caller keys only a loopback "
                                          "address is allowed.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one (printed at "
                                          "start).")] = 8080,
        max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted; larger ones get 413.")]
        = 1 << 20,
        upstream_timeout: Annotated[float, typer.Option(
            help="Seconds to wait for the upstream to connect, and between two pieces of its answer; then the "
            "caller gets 504 and the attempt is logged.")] = 120.0,
        graceful_timeout: Annotated[float, typer.Option(
            help="On SIGTERM or Ctrl-C, seconds to let requests in flight finish before they are cancelled "
            "(their attempts are logged either way).")] = 30.0,
        check_every: Annotated[int, typer.Option(
            help="Streams: check the output every N pieces; pieces are held back until checked.")] = 8,
        window: Annotated[int, typer.Option(help="Streams: characters of recent output each check reads.")] = 2000,
        log_level: Annotated[str, typer.Option(help="Server log level (info also logs each request).")]
        = "warning",
    ) -> None:
        """Put a policy in front of a model server: an OpenAI-compatible gateway for /v1/chat/completions and
        /v1/completions, streamed or not. Prompts are checked before the upstream is called, outputs while a
        stream is held back; refusals are OpenAI-style errors; every attempt is signed and logged, and
        responses name their record (x-guard-record-id, x-guard-log-index; GET /v1/guard/records/ID)."""
        if ctx.invoked_subcommand is not None:
            return
        from guard.serve.server import ServeOptions, run

        run(ServeOptions(
            upstream=upstream, upstream_key=upstream_key, model=model, served_model_name=served_model_name,
            device=device, policy=policy, log=log, keys=keys_dir, api_keys=api_keys, host=host, port=port,
            max_body_bytes=max_body_bytes, upstream_timeout=upstream_timeout, graceful_timeout=graceful_timeout,
            check_every=check_every, window=window, concurrency=concurrency, log_level=log_level,
        ))

    keys_app = typer.Typer(help="Callers' API keys (only their SHA-256 is stored).", no_args_is_help=True)
    serve_app.add_typer(keys_app, name="keys")

    @keys_app.command("add")
    def add(name: Annotated[str, typer.Argument(help="Who the key is for.")], api_keys: ApiKeysOpt = None,
            as_json: JsonOpt = False) -> None:
        """Make an API key for a caller and print it once; the file keeps its hash only."""
        from guard.serve.callers import CallerKeys

        store = CallerKeys(api_keys)
        key = store.add(name)
        emit({"name": name, "key": key, "file": str(store.path)}, as_json,
             lambda c: c.print(f"{key}\n[dim]key for {name!r}; shown once, its hash is in {store.path}[/]"))

    @keys_app.command("list")
    def list_(api_keys: ApiKeysOpt = None, as_json: JsonOpt = False) -> None:
        """The callers who have a key."""
        from guard.serve.callers import CallerKeys

        callers = CallerKeys(api_keys).load()
        emit([{"name": c.name, "created_at": c.created_at} for c in callers], as_json,
             lambda c: [c.print(f"{k.name}\t{k.created_at}") for k in callers] or c.print("no keys"))

    @keys_app.command("remove")
    def remove(name: Annotated[str, typer.Argument(help="The caller whose key to revoke.")],
               api_keys: ApiKeysOpt = None) -> None:
        """Revoke a caller's key (a running gateway reads the file when it starts)."""
        from guard.serve.callers import CallerKeys

        CallerKeys(api_keys).remove(name)
