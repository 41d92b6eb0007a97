"""Running the gateway: options checked, parts built, uvicorn started on a socket bound first, a clean stop.

The options are checked and the parts built first, then the socket is bound and handed to uvicorn, so ``--port 0``
works and the line ``guard serve: listening on URL`` (on stderr, once the backend is loaded) names the real
address. On SIGTERM or Ctrl-C uvicorn stops accepting,
lets requests in flight finish (up to ``graceful_timeout`` seconds, then cancels them: a cancelled request logs
its attempt before it lets go), and the gateway then waits for every record being written, signs a checkpoint
over the log and closes it. The process exits 0.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``guard serve`` takes; see ``guard serve --help`` for each."""

    upstream: str | None = None
    upstream_key: str | None = None
    model: str | None = None
    served_model_name: str | None = None
    device: str = "auto"
    policy: str = "default"
    log: str | None = None
    keys: Path | None = None
    api_keys: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1 << 20
    upstream_timeout: float = 120.0
    graceful_timeout: float = 30.0
    check_every: int = 8
    window: int = 2000
    concurrency: int = 4
    log_level: str = "warning"


def build(options: ServeOptions, *, on_ready=None):
    """The ``Gateway`` the options describe; ``InputError``/``KeysError``/``PolicyError`` say what is wrong."""
    from guard.pipeline.guard import Guard
    from guard.policy import load
    from guard.serve.app import Gateway
    from guard.serve.callers import Authenticator, CallerKeys
    from guard.signing.keys import KeyStore

    if (options.upstream is None) == (options.model is None):
        raise InputError("give either --upstream URL (an OpenAI-compatible server) or --model PATH (a local model)")
    if options.upstream is not None and not options.upstream.startswith(("http://", "https://")):
        raise InputError(f"--upstream {options.upstream!r}: expected an http:// or https:// URL ending in /v1")
    for name in ("max_body_bytes", "check_every", "window", "concurrency"):
        if getattr(options, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if options.upstream_timeout <= 0 or options.graceful_timeout < 0:
        raise InputError("--upstream-timeout must be positive and --graceful-timeout not negative")
    callers = CallerKeys(options.api_keys).load()
    if not callers and not _loopback(options.host):
        raise InputError(f"no API keys in {CallerKeys(options.api_keys).path}: a gateway on {options.host} would be "
                         "open to anyone; add one with `guard serve keys add NAME`, or listen on 127.0.0.1")
    policy, keys = load(options.policy), KeyStore(options.keys)
    keys.log_private_key()  # fail now, not at the first request, when the keys are missing
    if policy.signing.text != "none":
        keys.content_signer()
    guard = Guard(policy, log=options.log, keys=keys)
    backend, name = _backend(options)
    return Gateway(guard, backend, Authenticator(callers), model_name=name, check_every=options.check_every,
                   window=options.window, max_body_bytes=options.max_body_bytes, on_ready=on_ready)


def run(options: ServeOptions) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    import uvicorn

    where = ""
    source = f"upstream {options.upstream}" if options.upstream else f"model {options.model}"

    def ready() -> None:
        print(f"guard serve: listening on {where} ({source}, policy {options.policy})", file=sys.stderr, flush=True)

    gateway = build(options, on_ready=ready)  # bad options fail here, before anything listens
    config = uvicorn.Config(gateway.app(), host=options.host, port=options.port, log_level=options.log_level,
                            access_log=options.log_level in ("debug", "trace", "info"), lifespan="on",
                            timeout_graceful_shutdown=options.graceful_timeout, server_header=False)
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn exits when it cannot bind; it has logged why
        raise InputError(f"cannot listen on {options.host}:{options.port}") from None
    host, port = sock.getsockname()[:2]
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    # uvicorn re-raises the signal it stopped on once it is done; by then every record is written: exit 0.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    uvicorn.Server(config).run(sockets=[sock])
    print("guard serve: stopped; every record written and a checkpoint signed", file=sys.stderr, flush=True)


def _backend(options: ServeOptions):
    from guard.serve.backends import LocalModel, OpenAIUpstream

    if options.upstream is not None:
        backend = OpenAIUpstream(options.upstream, api_key=options.upstream_key, timeout=options.upstream_timeout)
        return backend, options.served_model_name or "upstream"
    from generators.transformers_text import TransformersText

    model = TransformersText(options.model, device=options.device, local_files_only=Path(options.model).is_dir())
    name = options.served_model_name or Path(options.model.rstrip("/")).name
    return LocalModel(model, name=name, concurrency=options.concurrency), name


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
