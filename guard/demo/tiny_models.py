"""Tiny random-weight models built on the spot: the test suite's fixtures and the offline demo's models.

Tests use them to exercise the real loading code with no network; ``guard demo`` uses them, and says so, when no
real model can be loaded.

Each builder takes a directory, writes a model there in the format its real counterpart ships in, and returns
the paths a caller loads from. They are deterministic (fixed seeds, fixed corpus) and build in about a second.
Random weights make the *scores* meaningless but the *code paths* real: tokenizers, configs, checkpoints,
windowing, generation, watermark processors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

# Labels the detoxify ``original`` checkpoint ships (Jigsaw names, before detoxify renames them).
DETOXIFY_ORIGINAL_CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

_WORDS = (
    "the a an and or but if then so of to in on at by for with from about as into over under after before "
    "is are was were be been being have has had do does did will would can could should may might must "
    "i you he she it we they me him her us them my your his its our their this that these those "
    "good bad new old big small long short high low great little other same different right wrong "
    "time year day way man woman child world life hand part place case week company system program "
    "question work government number night point home water room mother area money story fact month "
    "lot study book eye job word business issue side kind head house service friend father power hour "
    "game line end member law car city community name president team minute idea kid body information "
    "back parent face others level office door health person art war history party result change "
    "morning reason research girl guy moment air teacher force education foot boy age policy music "
    "say get make go know take see come think look want give use find tell ask seem feel try leave call "
    "stupid idiot hate kill ugly dumb nice kind love friendly happy calm polite thanks please"
).split()

_CORPUS = [
    "The quick brown fox jumps over the lazy dog while the children watch from the window.",
    "A language model predicts the next token from the tokens that came before it.",
    "Every output is scored, watermarked, signed and written to an append-only log.",
    "She said that the weather would be good for a long walk by the river tomorrow.",
    "Researchers measure how often a detector finds the mark after words are replaced.",
    "The city council met on Tuesday to discuss the new budget for schools and parks.",
    "You are a helpful assistant. Answer the question politely and keep it short.",
    "He thought the game was over, but his team scored twice in the final minutes.",
]


class DetoxifyFiles(NamedTuple):
    checkpoint: Path  # a detoxify-format ``.ckpt`` (config + state_dict)
    config_dir: Path  # the local Hugging Face config + tokenizer folder it needs offline


def _bert_folder(directory: Path, *, num_labels: int, id2label: dict[int, str] | None = None,
                 label_bias: float | None = None,
                 problem_type: str | None = None, max_position_embeddings: int = 512):
    """A small BERT classifier with a hand-written WordPiece vocabulary, saved as a Hugging Face folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(_WORDS)),
             *"abcdefghijklmnopqrstuvwxyz0123456789.,!?'", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(vocab_file=str(directory / "vocab.txt"), model_max_length=max_position_embeddings
                  ).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=max_position_embeddings, num_labels=num_labels, problem_type=problem_type,
        **({"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}),
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # a default-initialised head scores every input alike; make the input matter
        model.classifier.weight.normal_(0.0, 1.5)
        if label_bias is None:
            model.classifier.bias.copy_(torch.linspace(-2.0, 2.0, num_labels))
        else:
            model.classifier.bias.fill_(label_bias)
    return model, config


def build_tiny_detoxify(
    directory: str | Path, *, max_position_embeddings: int = 512, hub_model_type: bool = True,
    label_bias: float | None = None,
) -> DetoxifyFiles:
    """A detoxify ``original``-format checkpoint (6 Jigsaw labels) and the local folder it loads offline from.

    ``label_bias`` sets every label's output bias (e.g. -4 makes scores small, as a real model's are on harmless
    text); by default the biases spread from -2 to 2 so tests see labels on both sides of a threshold.

    With ``hub_model_type`` the checkpoint's ``config.arch.args.model_type`` names ``bert-base-uncased`` exactly
    as the released one does, so a loader must point it at ``config_dir`` instead of the hub; without it, it
    names ``config_dir`` itself, which is what plain ``detoxify.Detoxify`` needs to load offline.
    """
    import torch

    directory = Path(directory)
    config_dir = directory / "config"
    model, _ = _bert_folder(config_dir, num_labels=len(DETOXIFY_ORIGINAL_CLASSES),
                            max_position_embeddings=max_position_embeddings, label_bias=label_bias)
    model.config.save_pretrained(config_dir)
    checkpoint = directory / "toxic_tiny.ckpt"
    torch.save(
        {
            "config": {
                "arch": {"args": {
                    "model_type": "bert-base-uncased" if hub_model_type else str(config_dir),
                    "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer",
                    "num_classes": len(DETOXIFY_ORIGINAL_CLASSES),
                }},
                "dataset": {"args": {"classes": list(DETOXIFY_ORIGINAL_CLASSES)}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    return DetoxifyFiles(checkpoint=checkpoint, config_dir=config_dir)


def build_tiny_classifier(
    directory: str | Path,
    *,
    labels: tuple[str, ...] = ("neutral", "toxic", "insult"),
    problem_type: str = "single_label_classification",
    max_position_embeddings: int = 512,
) -> Path:
    """A sequence-classification model folder (config, safetensors weights, tokenizer) with named labels."""
    directory = Path(directory)
    model, _ = _bert_folder(directory, num_labels=len(labels), id2label=dict(enumerate(labels)),
                            problem_type=problem_type, max_position_embeddings=max_position_embeddings)
    model.save_pretrained(directory)
    return directory


def build_tiny_sentence_encoder(directory: str | Path, *, pooling_mode: str = "mean") -> Path:
    """A sentence-transformers-style folder (BERT + pooling config), laid out as all-MiniLM-L6-v2's is."""
    from transformers import BertModel

    directory = Path(directory)
    classifier, config = _bert_folder(directory, num_labels=2)
    encoder = BertModel(config)
    encoder.load_state_dict(classifier.bert.state_dict())
    encoder.save_pretrained(directory)
    (directory / "1_Pooling").mkdir(exist_ok=True)
    modes = {f"pooling_mode_{m}_tokens": m == pooling_mode for m in ("cls", "mean", "max")}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **modes}))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128,
                                                                      "do_lower_case": False}))
    return directory


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_gpt2(directory: str | Path, *, vocab_size: int = 1024, chat_template: bool = False) -> Path:
    """A causal LM folder: byte-level BPE trained on a fixed corpus + a 2-layer GPT-2 with random weights.

    Random weights give a near-uniform next-token distribution, the highest-entropy case for a watermark.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = _CORPUS * 4 + [" ".join(_WORDS[i::7]) for i in range(7)]
    bpe.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", unk_token="<|endoftext|>", model_max_length=512)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


# -- a tiny Stable Diffusion pipeline ---------------------------------------------------------------------------


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


def _write_clip_tokenizer(folder: Path) -> None:
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
    _write_clip_tokenizer(folder / "_tokenizer_src")
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


# -- a tiny GGUF file ---------------------------------------------------------------------------------------------


def build_tiny_gguf(directory: str | Path, *, vocab_size: int = 512) -> Path:
    """A GGUF file as llama.cpp's converter writes one: a 2-layer Llama with random float32 weights and its
    byte-level BPE tokenizer in the metadata. Returns the file's path. Needs the ``gguf`` package.

    The attention q/k weights are stored permuted the way llama.cpp stores them (transformers undoes that on
    load), so the file loads into exactly the model built here.
    """
    import gguf
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS * 4 + [" ".join(_WORDS[i::7]) for i in range(7)], vocab_size=vocab_size,
                            min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False)
    state = json.loads(bpe._tokenizer.to_str())
    vocab = sorted(state["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    path = directory / "tiny-llama.F32.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if token == "<|endoftext|>" else gguf.TokenType.NORMAL
                            for token, _ in vocab])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_add_bos_token(False)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads

    def permute(w, n_head):  # llama.cpp's rotary layout for q and k
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
                 "post_attention_layernorm": "ffn_norm"}
    for name, tensor in model.state_dict().items():
        data = tensor.float().numpy()
        if name.startswith("model.layers."):
            _, _, layer, rest = name.split(".", 3)
            module = rest.rsplit(".", 1)[0]
            if module == "self_attn.q_proj":
                data = permute(data, heads)
            elif module == "self_attn.k_proj":
                data = permute(data, kv_heads)
            name = f"blk.{layer}.{per_layer[module]}.weight"
        else:
            name = names[name]
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
