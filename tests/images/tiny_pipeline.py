"""A tiny random-weight Stable Diffusion pipeline, written to a folder, for offline tests.

It has the real architecture (CLIP text encoder, conditional UNet, KL autoencoder, DDIM scheduler) at toy width,
so ``DiffusersImage`` exercises the same loading, hashing and sampling code it runs on a real checkpoint. The
tokenizer is byte-level BPE with no merges: every character is a token, which is all a random model needs.
"""

from __future__ import annotations

import json
from pathlib import Path


def _byte_unicode() -> list[str]:
    """The printable stand-ins GPT-2/CLIP BPE use for the 256 byte values."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tokenizer(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_unicode()
    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def build_tiny_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """Save a random StableDiffusionPipeline (256x256 images, 8x latents, ~700 KB) to ``folder`` and return it."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(  # four blocks: the 8x latent scale of real Stable Diffusion
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=256,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=600,
            max_position_embeddings=77,
        )
    )
    write_tokenizer(folder / "_tokenizer_src")
    tokenizer = CLIPTokenizer(
        vocab_file=str(folder / "_tokenizer_src" / "vocab.json"),
        merges_file=str(folder / "_tokenizer_src" / "merges.txt"),
        model_max_length=77,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
