"""Any diffusers text-to-image pipeline, by hub id or local folder, as a ``Generator``.

The pipeline is resolved to a folder first (``DiffusionPipeline.download`` for a hub id, which honours the HF
cache and ``local_files_only``), then loaded from that folder with ``AutoPipelineForText2Image``, falling back to
``DiffusionPipeline`` for pipelines the auto class does not map. Resolving first is what lets the record name the
exact model: the hub commit (the snapshot folder's name) and its weights hash (``core.weights``).

Every image gets its own seed and its own ``torch.Generator``, so any one image of a batch can be reproduced
alone from its record. Generators live on the CPU, so the same seed gives the same noise on CPU and CUDA.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from core.chat import user_turn
from core.device import LOAD_PRECISIONS, Precision, resolve_device
from core.errors import InputError, ModelUnavailableError
from core.weights import DOWNLOADS_OFF, hub_access, offline, weights_sha256
from generators._latents import first_seed, float_latents, tensor_sha256
from generators.base import Generation, Generator, GeneratorInfo

_HUB_CACHE_MARKER = "snapshots"


class DiffusersImage(Generator):
    """Text-to-image with a diffusers pipeline.

    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available). ``dtype`` is
    ``"float32"``, ``"float16"`` or ``"bfloat16"`` (or another spelling ``core.device.Precision`` knows); the
    default (``None`` or ``"auto"``) is float16 on CUDA and float32 on the CPU.
    ``generate`` takes ``height``, ``width``, ``steps``, ``guidance_scale``, ``negative_prompt`` and ``seed``
    (the first image's seed; image *i* of the call uses ``seed + i``), and ``hooks["latents"]``: initial noise,
    one latent (broadcast) or one per prompt, shaped like the pipeline's latents (batch, channels, h/f, w/f).
    """

    modality = "image"
    hook_names = frozenset({"latents"})

    def __init__(
        self,
        model: str | Path,
        *,
        revision: str | None = None,
        variant: str | None = None,
        device: str = "auto",
        dtype: Precision | str | None = None,
        batch_size: int = 4,
        local_files_only: bool | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.model = str(model)
        self.revision = revision
        self.variant = variant
        self.device_request = device
        self.dtype_request = Precision.parse(dtype, allowed=LOAD_PRECISIONS)
        self.batch_size = batch_size
        self.local_files_only = offline(local_files_only)
        self.defaults = dict(defaults or {})

    # -- loading -------------------------------------------------------------------------------------------

    @cached_property
    def folder(self) -> Path:
        """The local folder holding the pipeline (downloaded into the HF cache first for a hub id)."""
        path = Path(self.model).expanduser()
        if path.exists():
            if not (path / "model_index.json").is_file():
                raise ModelUnavailableError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
            return path
        from diffusers import DiffusionPipeline

        try:
            with hub_access(self.local_files_only):
                return Path(DiffusionPipeline.download(self.model, revision=self.revision, variant=self.variant,
                                                       local_files_only=self.local_files_only))
        except Exception as exc:
            hint = f"; it is not on this machine and {DOWNLOADS_OFF}" if self.local_files_only else ""
            raise ModelUnavailableError(f"{self.model}: cannot find or download this diffusers pipeline: {exc}{hint}"
                                        ) from exc

    @cached_property
    def device(self) -> str:
        return str(resolve_device(self.device_request))

    @cached_property
    def torch_dtype(self):
        precision = self.dtype_request
        if precision is Precision.AUTO:
            precision = Precision.FLOAT16 if self.device.startswith("cuda") else Precision.FLOAT32
        return precision.torch_dtype()

    @cached_property
    def pipeline(self):
        from diffusers import AutoPipelineForText2Image, DiffusionPipeline

        kwargs: dict[str, Any] = {"dtype": self.torch_dtype}
        if self.variant:
            kwargs["variant"] = self.variant
        with hub_access(True):  # a local folder: nothing to fetch
            try:
                pipe = AutoPipelineForText2Image.from_pretrained(self.folder, **kwargs)
            except ValueError:  # a pipeline class AutoPipeline has no text-to-image mapping for
                pipe = DiffusionPipeline.from_pretrained(self.folder, **kwargs)
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @cached_property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(
            name="diffusers",
            model_id=self.model,
            revision=self.revision or _hub_commit(self.folder),
            weights_sha256=weights_sha256(self.folder),
        )

    # -- generation ----------------------------------------------------------------------------------------

    def generate(self, prompts: list[str], *, hooks: dict[str, Any] | None = None, **params: Any) -> list[Generation]:
        import torch

        if not prompts:
            return []
        prompts = [user_turn(p) for p in prompts]  # a conversation's image request is its user turn
        params = {**self.defaults, **params}
        pipe = self.pipeline
        height, width = self._size(params)
        steps = int(params.pop("steps", params.pop("num_inference_steps", 30)))
        guidance = float(params.pop("guidance_scale", 7.5))
        negative = params.pop("negative_prompt", None)
        seed = first_seed(params.pop("seed", None), len(prompts))
        if params:
            raise InputError(f"unknown generation parameters: {', '.join(sorted(params))}")
        latents = _latents_for(hooks, len(prompts))

        outputs: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            seeds = [seed + start + i for i in range(len(chunk))]
            call: dict[str, Any] = {
                "prompt": chunk,
                "height": height,
                "width": width,
                "num_inference_steps": steps,
                "guidance_scale": guidance,
                "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
                "output_type": "pil",
            }
            if negative is not None:
                call["negative_prompt"] = [negative] * len(chunk)
            if latents is not None:
                call["latents"] = latents[start : start + len(chunk)].to(self.device, self.torch_dtype)
            with torch.inference_mode():
                result = pipe(**call)
            flagged = getattr(result, "nsfw_content_detected", None)
            for i, (image, image_seed) in enumerate(zip(result.images, seeds)):
                record: dict[str, Any] = {
                    "height": image.height,
                    "width": image.width,
                    "steps": steps,
                    "guidance_scale": guidance,
                    "seed": image_seed,
                    "scheduler": type(pipe.scheduler).__name__,
                    "dtype": str(self.torch_dtype).removeprefix("torch."),
                    "device": self.device,
                }
                if negative is not None:
                    record["negative_prompt"] = negative
                if latents is not None:
                    record["initial_latents_sha256"] = tensor_sha256(latents[start + i])
                if flagged is not None:
                    record["nsfw_content_detected"] = bool(flagged[i])
                outputs.append(Generation(content=image, params=record))
        return outputs

    def _size(self, params: dict[str, Any]) -> tuple[int, int]:
        """Height and width: as asked, else the UNet/transformer's native resolution."""
        pipe = self.pipeline
        factor = getattr(pipe, "vae_scale_factor", 8)
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        native = getattr(getattr(denoiser, "config", None), "sample_size", None)
        native = native[0] if isinstance(native, list | tuple) else native
        default = int(native) * factor if native else 512
        height = int(params.pop("height", default))
        width = int(params.pop("width", default))
        if height % factor or width % factor or height <= 0 or width <= 0:
            raise InputError(f"height and width must be positive multiples of {factor}, got {height}x{width}")
        return height, width


def _hub_commit(folder: Path) -> str | None:
    """The commit hash of an HF-cache snapshot folder (``.../snapshots/<commit>``); ``None`` for a local folder."""
    return folder.name if folder.parent.name == _HUB_CACHE_MARKER else None


def _latents_for(hooks: dict[str, Any] | None, count: int):
    """``hooks["latents"]`` as one float tensor per prompt, or ``None``."""
    if not hooks or hooks.get("latents") is None:
        return None
    latents = float_latents(hooks["latents"], "initial latents")
    if latents.dim() == 3:
        latents = latents.unsqueeze(0)
    if latents.dim() != 4:
        raise InputError(f"initial latents must be (batch, channels, height, width), got shape {tuple(latents.shape)}")
    if latents.shape[0] == 1 and count > 1:
        latents = latents.expand(count, -1, -1, -1)
    if latents.shape[0] != count:
        raise InputError(f"got {latents.shape[0]} initial latents for {count} prompts")
    return latents
