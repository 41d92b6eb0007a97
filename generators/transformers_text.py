"""Text generation with any transformers causal LM, by hub id, local folder or GGUF file, on CPU or CUDA.

The guard hands in a watermark through ``hooks["text_watermark"]`` (a transformers ``WatermarkingConfig``); it is
passed to ``generate`` so the green-list bias is applied while sampling, after every other logits processor.
Each output records the sampling parameters and the seed, and ``info`` pins the model by revision and by a
hash of its weights files, so a provenance record names exactly what produced the text.

GGUF files (llama.cpp's format, a common way small models are shared) load through transformers, which
dequantizes them to float32 (this needs the ``gguf`` and ``accelerate`` packages, and takes about 30 s for a
135M-parameter model on two CPU cores). ``convert_gguf`` does that once and saves a plain folder that reloads in
about a second; the record then names the folder's weights and ``gguf_source.json`` in it names the file.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from core.chat import Prompt, content_text, is_chat, validate
from core.device import LOAD_PRECISIONS, Precision, resolve_device
from core.errors import InputError, ModelUnavailableError
from core.weights import DOWNLOADS_OFF, hub_access, offline, snapshot_folder, weights_sha256
from generators.base import Generation, Generator, GeneratorInfo

# Sampling parameters recorded with every output. Their defaults are the model's own generation config (what
# its authors recommend), then the constructor's ``params``, then the call's.
RECORDED_PARAMS = ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens")


class TransformersText(Generator):
    """A causal LM behind the ``Generator`` interface.

    ``model`` is a hub id, a local folder or a ``.gguf`` file (``gguf_file`` names the file inside a folder or hub
    repository instead); ``revision`` pins a hub revision. ``device`` is ``auto`` (CUDA when
    available), ``cpu`` or ``cuda[:N]``; ``dtype`` is the precision to load in (``float32``, ``float16``,
    ``bfloat16`` or another spelling ``core.device.Precision`` knows); ``None`` or ``auto`` keeps transformers'
    default.
    Prompts go through the tokenizer's chat template when it has one (``chat_template=False`` turns that off).
    ``batch_size`` bounds how many prompts are generated together (left-padded). ``params`` sets defaults for
    the sampling parameters; a call's own parameters override them.
    """

    modality = "text"
    hook_names: ClassVar[frozenset[str]] = frozenset({"text_watermark"})

    def __init__(
        self,
        model: str | Path,
        *,
        revision: str | None = None,
        gguf_file: str | None = None,
        device: str = "auto",
        dtype: Precision | str | None = None,
        chat_template: bool | None = None,
        system_prompt: str | None = None,
        batch_size: int = 8,
        local_files_only: bool | None = None,
        hash_weights: bool = True,
        **params: Any,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name, self.gguf_file = _split_gguf(model, gguf_file)
        self.revision = revision
        self.device = device
        self.dtype = Precision.parse(dtype, allowed=LOAD_PRECISIONS)
        self.chat_template = chat_template
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        self.local_files_only = offline(local_files_only)
        self.hash_weights = hash_weights
        self.default_params = params
        self._model = None
        self._tokenizer = None
        self._info: GeneratorInfo | None = None
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------------------

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kwargs: dict[str, Any] = {"revision": self.revision, "local_files_only": self.local_files_only}
            if self.gguf_file:
                _require_gguf_support(self.gguf_file)
                kwargs["gguf_file"] = self.gguf_file
            elif Path(self.model_name).is_dir() and not (Path(self.model_name) / "config.json").is_file():
                raise ModelUnavailableError(f"{self.model_name}: a folder with no model in it (no config.json; a "
                                            "transformers model folder, or a .gguf file, is expected)")
            with hub_access(self.local_files_only):
                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model_name, **kwargs)
                except OSError as exc:  # not a folder, not cached, and no download allowed or possible
                    hint = f"; it is not on this machine and {DOWNLOADS_OFF}" if self.local_files_only else ""
                    raise ModelUnavailableError(f"{self.model_name}: cannot load this model ({exc}){hint}") from exc
                if self.dtype is not Precision.AUTO:
                    kwargs["dtype"] = self.dtype.torch_dtype()
                model = AutoModelForCausalLM.from_pretrained(self.model_name, **kwargs)
            model.to(resolve_device(self.device)).eval()
            tokenizer.padding_side = "left"  # decoder-only models continue from the last position
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            commit = getattr(model.config, "_commit_hash", None)
            local = Path(self.model_name).is_dir()
            folder = snapshot_folder(self.model_name, commit) if self.hash_weights else None
            model_id, weights = self.model_name, folder
            if self.gguf_file:  # the record names the file itself, and its hash
                model_id = str(Path(self.model_name) / self.gguf_file) if local else \
                    f"{self.model_name}:{self.gguf_file}"
                weights = folder / self.gguf_file if folder else None
            self._info = GeneratorInfo(
                name="transformers",
                model_id=model_id,
                revision=None if local else commit,
                weights_sha256=weights_sha256(weights) if weights else None,
            )
            self._model, self._tokenizer = model, tokenizer

    @property
    def model(self):
        self._load()
        return self._model

    @property
    def tokenizer(self):
        """The tokenizer, as watermark detection needs it (left padding, pad token set)."""
        self._load()
        return self._tokenizer

    @property
    def config(self):
        """The model config, as watermark detection needs it (vocabulary size, BOS token)."""
        return self.model.config

    @property
    def info(self) -> GeneratorInfo:
        self._load()
        assert self._info is not None
        return self._info

    # -- generation ----------------------------------------------------------------------------------------

    def _uses_chat_template(self) -> bool:
        has = getattr(self.tokenizer, "chat_template", None) is not None
        if self.chat_template and not has:
            raise InputError(f"{self.model_name}: chat_template=True but the tokenizer has no chat template")
        return has if self.chat_template is None else bool(self.chat_template)

    def _prompt_text(self, prompt: Prompt, chat: bool) -> str:
        """The text the model continues: a plain prompt as it is, or a conversation through the chat template
        (``system_prompt`` first, unless the conversation has its own)."""
        if is_chat(prompt):
            if not chat:
                raise InputError(f"{self.model_name}: a chat prompt needs the tokenizer's chat template, and "
                                 "this model has none (or chat_template=False); send a plain text prompt")
            messages = [{"role": m["role"], "content": content_text(m.get("content"))} for m in validate(prompt)]
        elif not chat:
            return prompt
        else:
            messages = [{"role": "user", "content": prompt}]
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, prompts: list[Prompt], chat: bool):
        texts = [self._prompt_text(p, chat) for p in prompts]
        # A rendered chat template already holds its special tokens; a plain prompt gets the tokenizer's own.
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
        return {k: v.to(self.model.device) for k, v in enc.items()}

    def _model_defaults(self) -> dict[str, Any]:
        """The values ``generate`` would use for the recorded parameters: the model's generation config, else
        transformers' global defaults; except that we sample and allow 128 new tokens unless the model says."""
        from transformers import GenerationConfig

        config = self.model.generation_config
        fallback = {**getattr(GenerationConfig, "_get_default_generation_params", dict)(),
                    "do_sample": True, "max_new_tokens": 128}
        values = {k: getattr(config, k, None) for k in RECORDED_PARAMS}
        return {k: fallback.get(k) if v is None else v for k, v in values.items()}

    def _resolve(self, hooks: dict[str, Any] | None, params: dict[str, Any]):
        """Effective parameters (recorded), the kwargs for ``generate`` and whether a watermark is applied."""
        merged = {**self._model_defaults(), **self.default_params, **params}
        if merged.get("seed") is None:
            merged["seed"] = secrets.randbelow(2**31)
        merged["chat_template"] = self._uses_chat_template()
        watermark = (hooks or {}).get("text_watermark")
        gen_kwargs = {k: v for k, v in merged.items() if k not in ("seed", "chat_template")}
        gen_kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        if watermark is not None:
            gen_kwargs["watermarking_config"] = watermark
        return merged, gen_kwargs, watermark is not None

    def generate(
        self, prompts: list[Prompt], *, hooks: dict[str, Any] | None = None, **params: Any
    ) -> list[Generation]:
        """One ``Generation`` per prompt; ``params`` are sampling parameters (``max_new_tokens``, ``temperature``,
        ``top_p``, ``top_k``, ``do_sample``, ``seed``, …) plus ``batch_size``. Outputs are reproducible given
        the seed and the same batch (same prompts, same order), device and library versions."""
        import torch

        batch_size = int(params.pop("batch_size", self.batch_size))
        merged, gen_kwargs, watermarked = self._resolve(hooks, params)
        out: list[Generation] = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            enc = self._encode(chunk, merged["chat_template"])
            # Each chunk gets its own seed: with one seed for all, a prompt repeated across chunks (K samples of
            # one prompt) would get the same sample in every chunk. The record holds the chunk's own seed.
            seed = merged["seed"] + start // batch_size
            with _seeded(seed, self.model.device), torch.inference_mode():
                ids = self.model.generate(**enc, **gen_kwargs)
            texts = self.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            batch = {"size": len(chunk), "index": start // batch_size}
            out += [Generation(content=t, params={**merged, "seed": seed, "batch": batch}, watermarked=watermarked)
                    for t in texts]
        return out

    def stream(self, prompt: Prompt, hooks: dict[str, Any] | None = None, **params: Any) -> TextStream:
        """Yield text pieces as they are sampled (generation runs in a thread). The returned ``TextStream``
        carries the recorded ``params`` and ``watermarked``; closing it early stops generation."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        merged, gen_kwargs, watermarked = self._resolve(hooks, params)
        enc = self._encode([prompt], merged["chat_template"])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()
        gen_kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnEvent(stop)])
        return TextStream(self, enc, gen_kwargs, merged, watermarked, streamer, stop)


class TextStream(Iterator[str]):
    """Text pieces of one streamed generation. ``params``/``watermarked`` are known before the first piece;
    ``text`` is everything yielded so far. ``close()`` (or leaving a ``with`` block) stops the model early."""

    def __init__(self, gen: TransformersText, enc, gen_kwargs, params, watermarked, streamer, stop) -> None:
        self.params: dict[str, Any] = {**params, "batch": {"size": 1, "index": 0}}
        self.watermarked: bool = watermarked
        self.text = ""
        self._done = False
        self._streamer = streamer
        self._stop = stop
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(gen, enc, gen_kwargs), daemon=True)
        self._thread.start()

    def _run(self, gen: TransformersText, enc, gen_kwargs) -> None:
        import torch

        try:
            with _seeded(self.params["seed"], gen.model.device), torch.inference_mode():
                gen.model.generate(**enc, **gen_kwargs, streamer=self._streamer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            self._error = exc
            self._streamer.end()

    def __next__(self) -> str:
        try:
            piece = next(self._streamer)
        except StopIteration:
            self._done = True
            self._thread.join()
            if self._error is not None:
                raise self._error
            raise
        self.text += piece
        return piece

    def close(self) -> None:
        """Stop sampling at the next token and wait for the generation thread to finish."""
        self._stop.set()
        if not self._done:
            for _ in self._streamer:  # runs until generation notices the stop and ends the stream
                pass
            self._done = True
        self._thread.join()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _StopOnEvent:
    """A stopping criterion that ends generation once ``event`` is set (the consumer closed the stream)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _seeded:
    """Seed torch's RNG (CPU and the model's GPU) for one generation, restoring the caller's RNG state after."""

    def __init__(self, seed: int, device) -> None:
        self.seed, self.device = seed, device

    def __enter__(self) -> None:
        import torch

        devices = [self.device] if self.device.type == "cuda" else []
        self._fork = torch.random.fork_rng(devices=devices)
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)


def _split_gguf(model: str | Path, gguf_file: str | None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name): a path to a ``.gguf`` file is split into its folder and name."""
    path = Path(model)
    if gguf_file is None and path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelUnavailableError(f"{path}: no such GGUF file")
        return str(path.parent), path.name
    return str(model), gguf_file


def _require_gguf_support(name: str) -> None:
    import importlib.util

    missing = [pkg for pkg in ("gguf", "accelerate") if importlib.util.find_spec(pkg) is None]
    if missing:
        raise ModelUnavailableError(f"{name}: loading a GGUF file needs the {' and '.join(missing)} package(s): "
                                    "pip install 'genguard[models]'")


def convert_gguf(gguf_path: str | Path, out: str | Path) -> Path:
    """Dequantize a GGUF file once into a plain transformers folder (float32 safetensors, tokenizer, chat
    template) that loads in about a second instead of 30. ``out/gguf_source.json`` records the file's name and
    SHA-256, so a record naming the folder's weights can be traced back to the file. Returns ``out``."""
    import json
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out = Path(gguf_path), Path(out)
    _require_gguf_support(str(gguf_path))
    with hub_access(True):  # a local file: nothing to fetch
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The loaded model still carries its GGUF quantization config, which transformers refuses to save; the
    # weights are plain float32 already, so copy them into a model built from the config without it.
    config = loaded.config
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    # Written beside ``out`` under a name of its own, then renamed: a crash mid-way leaves no half-written folder
    # under the final name, and two processes converting the same file at once (two `guard demo` runs) neither
    # write into one folder nor fail: the second to finish keeps the first one's folder and drops its own.
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".partial", dir=out.parent))
    try:
        plain.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / "gguf_source.json").write_text(json.dumps(
            {"file": gguf_path.name, "sha256": weights_sha256(gguf_path), "dequantized_to": "float32"}, indent=2))
        try:
            partial.replace(out)
        except OSError:
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out
