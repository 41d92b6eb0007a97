"""``guard detect-text``: test a text file for the text watermark, with the key store's secret.

Exit codes: 0 the watermark is found; 1 it is not (a finding, as ``grep`` does it); 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, KeysOpt
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    @app.command("detect-text")
    def detect_text(
        file: Annotated[Path, typer.Argument(help="UTF-8 text: the generated continuation, without the prompt.")],
        model: Annotated[str, typer.Option("--model", help="The generating model (hub id or local folder); "
                                           "only its tokenizer and config are read.")],
        policy: Annotated[str, typer.Option("--policy", help="Policy whose watermark settings were used "
                                            "(shipped name or path).")] = "default",
        revision: Annotated[Optional[str], typer.Option("--revision", help="Hub revision of the model.")] = None,
        keys: KeysOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Test FILE for the green-list watermark the policy's settings and your key embed."""
        from guard import policy as policies
        from guard.cli._common import keystore
        from guard.verify.text import read_text_file
        from guard.watermark.text import MAX_TEXT_BYTES, detect_text_watermark

        text = read_text_file(file, limit=MAX_TEXT_BYTES)
        settings = policies.load(policy).watermark.text
        secret = keystore(keys).watermark_secret()
        tokenizer, config = _tokenizer_and_config(model, revision)
        result = detect_text_watermark(text, tokenizer, config, settings, secret)
        data = {"file": str(file), "model": model, "key_id": settings.key_id, **result.to_dict()}

        def human(console) -> None:
            verdict = "[green]watermark found[/]" if result.detected else "[yellow]no watermark found[/]"
            console.print(f"{verdict}: z = {result.z_score:.2f} (threshold {result.z_threshold}), "
                          f"p = {result.p_value:.3g}, {result.num_green_tokens}/{result.num_tokens_scored} "
                          "tokens green")

        emit(data, as_json, human)
        if not result.detected:
            raise Finding(f"{file}: no watermark found (z = {result.z_score:.2f}, threshold {result.z_threshold})")


def _tokenizer_and_config(model: str, revision: str | None):
    from transformers import AutoConfig, AutoTokenizer

    from core.errors import InputError
    from core.weights import DOWNLOADS_OFF, hub_access, offline

    try:
        local = {"revision": revision, "local_files_only": offline()}
        with hub_access(local["local_files_only"]):
            return AutoTokenizer.from_pretrained(model, **local), AutoConfig.from_pretrained(model, **local)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = f" (if it is not on this machine: {DOWNLOADS_OFF})" if offline() else ""
        raise InputError(f"{model}: cannot load the model's tokenizer and config: {first}{hint}") from None
