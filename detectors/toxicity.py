"""Toxicity scores from detoxify's released models, or from a detoxify checkpoint on local disk.

detoxify downloads its checkpoints from GitHub releases and, even for a local checkpoint, builds the model
config and tokenizer from ``checkpoint["config"]["arch"]["args"]["model_type"]`` (a hub id such as
``bert-base-uncased``). For offline use this detector rewrites that value, in memory, to ``config_dir``: a local
folder holding the model's ``config.json`` and tokenizer files. It never reaches the network when the files are
local, and raises ``ModelUnavailableError`` (not a hang or a download) when they are not and downloads are off.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from core.device import Precision
from core.errors import InputError, ModelUnavailableError
from core.hashing import sha256_file
from core.weights import DOWNLOADS_OFF, hub_access, offline
from detectors._text_batching import BatchSettings, Loaded, WindowedClassifierDetector

__all__ = ["ModelUnavailableError", "ToxicityDetector"]

MODELS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")

# detoxify renames some Jigsaw class names so every model reports the same labels (detoxify.load_checkpoint).
_RENAMED = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}

# The labels each released model reports (``config.dataset.args.classes`` of its checkpoint, renamed): the
# Toxic Comment models six, the Unintended Bias ones (and the multilingual model since v0.4) seven.
_ORIGINAL = frozenset({"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"})
MODEL_LABELS = {"original": _ORIGINAL, "original-small": _ORIGINAL, "unbiased": _ORIGINAL | {"sexual_explicit"},
                "unbiased-small": _ORIGINAL | {"sexual_explicit"}, "multilingual": _ORIGINAL | {"sexual_explicit"}}


class ToxicityDetector(WindowedClassifierDetector):
    """Scores every label the detoxify model returns (``toxicity``, ``severe_toxicity``, ``obscene``, ``threat``,
    ``insult``, ``identity_attack``, and more for the unbiased models), each in [0, 1] (sigmoid).

    Options: ``model`` (one of ``MODELS``) or ``checkpoint`` (a ``.ckpt`` path) with ``config_dir`` (the local
    config + tokenizer folder, for offline use); ``local_files_only`` (unset: downloads only when GUARD_ALLOW_DOWNLOADS
    is set; false asks for them, true refuses them); plus the
    batching options of ``BatchSettings`` (``batch_size``, ``max_batch_tokens``, ``max_length``, ``overlap``,
    ``precision``, ``device``, ``num_threads``).
    """

    name: ClassVar[str] = "toxicity"

    @classmethod
    def emitted_labels(cls, options: Mapping[str, Any]) -> frozenset[str] | None:
        if options.get("checkpoint") is None:
            return MODEL_LABELS.get(options.get("model", "original"))
        return _checkpoint_labels(Path(options["checkpoint"]))

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        super().validate_options(options)
        _check_sources(options.get("model", "original"), options.get("checkpoint"), options.get("config_dir"))

    def __init__(
        self,
        *,
        model: str = "original",
        checkpoint: str | Path | None = None,
        config_dir: str | Path | None = None,
        local_files_only: bool | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_length: int = 512,
        overlap: int = 64,
        precision: Precision | str = "auto",
        device: str = "auto",
        num_threads: int | None = None,
    ) -> None:
        _check_sources(model, checkpoint, config_dir)
        super().__init__(BatchSettings(max_length=max_length, overlap=overlap, batch_size=batch_size,
                                       max_batch_tokens=max_batch_tokens, precision=precision, device=device,
                                       num_threads=num_threads))
        self.model = model
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.config_dir = Path(config_dir) if config_dir is not None else None
        self.local_files_only = offline(local_files_only)

    def unavailable(self) -> str | None:
        if self.checkpoint is not None or not self.local_files_only:
            return None  # a local checkpoint, or a release file that can still be downloaded
        from detoxify.detoxify import MODEL_URLS

        cached = self._cached_release(MODEL_URLS[self.model])
        return None if cached.is_file() else f"detoxify {self.model!r} is not cached ({cached}) and downloads are off"

    @staticmethod
    def _cached_release(url: str) -> Path:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]

    def _checkpoint_file(self) -> Path:
        """The local checkpoint: the given path, or detoxify's release file in torch's hub cache (downloaded
        there, hash-checked, unless downloads are off)."""
        if self.checkpoint is not None:
            return self.checkpoint
        import torch
        from detoxify.detoxify import MODEL_URLS

        url = MODEL_URLS[self.model]
        cached = self._cached_release(url)
        if cached.is_file():
            return cached
        if self.local_files_only:
            raise ModelUnavailableError(
                f"detoxify {self.model!r}: {cached} is not on this machine and {DOWNLOADS_OFF}; or pass "
                "checkpoint= and config_dir=, or name a fallback in the policy")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), hash_prefix=cached.stem.rsplit("-", 1)[-1])
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch is a RuntimeError
            raise ModelUnavailableError(f"detoxify {self.model!r}: cannot download {url}: {exc}") from exc
        return cached

    def _load(self, device) -> Loaded:
        import torch
        from detoxify.detoxify import get_model_and_tokenizer

        path = self._checkpoint_file()
        try:
            loaded: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
            raise InputError(f"{path}: not a readable detoxify checkpoint: {exc}") from exc
        if "config" not in loaded or "state_dict" not in loaded:
            raise InputError(f"{path}: not a detoxify checkpoint (needs 'config' and 'state_dict')")
        args = dict(loaded["config"]["arch"]["args"])
        if self.config_dir is not None:
            args["model_type"] = str(self.config_dir)
        elif self.local_files_only and not Path(args["model_type"]).is_dir():
            args["model_type"] = _cached_folder(args["model_type"])
        try:
            with hub_access(self.local_files_only):
                model, tokenizer = get_model_and_tokenizer(**args, state_dict=loaded["state_dict"])
        except OSError as exc:  # transformers' "not cached / cannot connect" errors are OSErrors
            raise ModelUnavailableError(
                f"detoxify {self.model!r}: config/tokenizer {args['model_type']!r} unavailable ({exc}); "
                "pass config_dir= with a local copy") from exc
        classes = [_RENAMED.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
        name = self.model if self.checkpoint is None else self.checkpoint.name
        return Loaded(
            model=model.to(device).eval(),
            tokenizer=tokenizer,
            labels=tuple(classes),
            columns=tuple(range(len(classes))),
            activation="sigmoid",
            model_id=f"detoxify:{name}@sha256:{sha256_file(path)}",
        )


def _check_sources(model: str, checkpoint: str | Path | None, config_dir: str | Path | None) -> None:
    """The model is a released one, or the checkpoint and config folder named exist."""
    if checkpoint is None and model not in MODELS:
        raise InputError(f"unknown detoxify model {model!r}; use one of {', '.join(MODELS)} or checkpoint=PATH")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ModelUnavailableError(f"{checkpoint}: detoxify checkpoint not found")
    if config_dir is not None and not (Path(config_dir) / "config.json").is_file():
        raise ModelUnavailableError(f"{config_dir}: no config.json there (config_dir must hold the model's "
                                    "config.json and tokenizer files)")


def _checkpoint_labels(path: Path) -> frozenset[str] | None:
    """The labels a checkpoint's config lists, read without loading its weights (memory-mapped, and with
    ``weights_only`` so reading it runs no code); None when it cannot be read that way."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return frozenset(_RENAMED.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"])
    except Exception:  # noqa: BLE001 - an older or unusual checkpoint: its labels are known once it loads
        return None


def _cached_folder(repo_id: str) -> str:
    """The local cache folder of a hub config and tokenizer: loading from the folder, not the hub id, is what
    keeps transformers from asking the hub whether the cached files are current."""
    from huggingface_hub import snapshot_download

    try:
        with hub_access(True):
            return snapshot_download(repo_id, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - not cached (LocalEntryNotFoundError), or not a valid repo id
        raise ModelUnavailableError(
            f"{repo_id!r} config is not in the Hugging Face cache and {DOWNLOADS_OFF}; or pass config_dir=") from exc
