"""Tiny, offline VLMs of the real transformers classes, for tests and the demo bundle.

No machine here reaches a model hub, so every model the tests and the demo use is built from a
config of the *same* class a 7B checkpoint uses (Qwen2.5-VL, Mllama, LLaVA), with a byte-level
BPE tokenizer trained here by `tokenizers` and the PIL image processors, then written with
`save_pretrained`. Loading goes back through `cagul.models.load_vlm`, the path a real checkpoint
takes. Chat templates mimic the real ones' structure (system/user/assistant headers around the
image placeholder), so the code that finds the question's rows meets the same shapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from cagul.models import FAMILIES

# Text the tokenizer learns merges from when no corpus is given: enough English that
# biographies and questions tokenize into a few tokens per word.
_BASE_CORPUS = [
    "What is the name of the person in the image?",
    "Where does this person live? Which city was this person born in?",
    "What is the health condition of this individual? Has this person been convicted of a crime?",
    "What is the occupation of the person shown? How much does this person earn per year?",
    "Is there a red circle in the image? Yes. No. How many squares are there? Two. Three.",
    "The person lives in Springfield. The person was born on 12 March 1985.",
    "I cannot answer that question. I am not able to share private information about people.",
    "left right top bottom blue green yellow purple orange black white star triangle square",
    "diabetes asthma hypertension arrested fraud theft engineer teacher doctor lawyer nurse",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 $ , . ? ! - ( ) : ;",
    "user assistant system USER: ASSISTANT: You are a helpful assistant.",
]

_QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_MLLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
    "<|end_header_id|>\n\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<|image|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
    "<|end_header_id|>\n\n{% endif %}"
)
_LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}"
    "ASSISTANT: {% endif %}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] != 'user' %}</s>{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_SPECIALS = {
    "qwen2_5_vl": [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ],
    "mllama": [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|image|>",
        "<|python_tag|>",
        "<|finetune_right_pad_id|>",
    ],
    "llava": ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
}


def train_tokenizer(
    family: str, corpus: Iterable[str] = (), vocab_size: int = 2000
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with the family's special tokens.

    Byte-level so that any question an auditor types tokenizes (no unknown tokens) and decoding
    gives back the exact text, which keyword matching depends on.
    """
    if family not in _SPECIALS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    specials = _SPECIALS[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_BASE_CORPUS) + list(corpus), trainer=trainer)
    if family == "qwen2_5_vl":
        kw = dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")
        extra = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
    elif family == "mllama":
        kw = dict(
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            pad_token="<|finetune_right_pad_id|>",
        )
        extra = {"image_token": "<|image|>"}
    else:
        kw = dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
        extra = {"image_token": "<image>"}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, padding_side="left", extra_special_tokens=extra, **kw
    )
    if family == "llava":
        # LLaVA-1.5 prepends <s>; a template-free BPE has no post-processor, so add it here.
        from tokenizers.processors import TemplateProcessing

        fast.backend_tokenizer.post_processor = TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    return fast


def _qwen(tokenizer, hidden: int, layers: int, image_size: int, vision: tuple[int, int] = (64, 2)):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    heads = max(2, hidden // 64)
    head_dim = hidden // heads
    # mrope splits the rotary half-dim into temporal/height/width sections; they must sum to it.
    half = head_dim // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=1024,
            rope_parameters={
                "rope_type": "default",
                "mrope_section": section,
                "rope_theta": 10000.0,
            },
            tie_word_embeddings=True,
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            depth=vision[1],
            hidden_size=vision[0],
            intermediate_size=2 * vision[0],
            num_heads=max(2, vision[0] // 32),
            out_hidden_size=hidden,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=image_size,
            fullatt_block_indexes=list(range(vision[1])),
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    pixels = image_size * image_size
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    return Qwen2_5_VLForConditionalGeneration(config), image_processor, _QWEN_TEMPLATE


def _text_config(tokenizer, hidden: int, layers: int, **extra) -> dict:
    """The language-model config every family shares: sizes scale with `hidden`."""
    heads = max(2, hidden // 64)
    return (
        dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        | extra
    )


def _llava(tokenizer, hidden: int, layers: int, image_size: int):
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=14,
            projection_dim=64,
        ),
        text_config=_text_config(tokenizer, hidden, layers, model_type="llama"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    return LlavaForConditionalGeneration(config), image_processor, _LLAVA_TEMPLATE


def _mllama(tokenizer, hidden: int, layers: int, image_size: int):
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessorPil,
    )

    # Real Llama-3.2-Vision puts a cross-attention layer every 5th layer; here every other one
    # so that even a 4-layer model has two cross-attention layers with their own selections.
    cross_layers = list(range(1, layers + 1, 2))
    config = MllamaConfig(
        vision_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_global_layers=1,
            attention_heads=2,
            image_size=image_size,
            patch_size=14,
            max_num_tiles=1,
            supported_aspect_ratios=[[1, 1]],
            intermediate_layers_indices=[0],
            vision_output_dim=128,
        ),
        text_config=_text_config(
            tokenizer,
            hidden,
            layers + len(cross_layers),
            cross_attention_layers=cross_layers,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
    )
    model = MllamaForConditionalGeneration(config)
    # The gates are zero at init in transformers (a pretrained LM starts image-blind); a tiny
    # model built from scratch would then ignore images entirely, so open them.
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            if hasattr(layer, "cross_attn_attn_gate"):
                layer.cross_attn_attn_gate.fill_(0.5)
                layer.cross_attn_mlp_gate.fill_(0.5)
    image_processor = MllamaImageProcessorPil(
        size={"height": image_size, "width": image_size}, max_image_tiles=1
    )
    return model, image_processor, _MLLAMA_TEMPLATE


_BUILDERS = {"qwen2_5_vl": _qwen, "llava": _llava, "mllama": _mllama}


def build_tiny_vlm(
    family: str,
    out_dir: str | Path,
    *,
    corpus: Iterable[str] = (),
    hidden: int = 128,
    layers: int = 2,
    image_size: int = 112,
    vocab_size: int = 2000,
    seed: int = 0,
    vision: tuple[int, int] | None = None,
) -> Path:
    """Build a randomly initialised tiny VLM of `family` and save model + processor to `out_dir`.

    `vision` = (width, depth) of the vision tower (Qwen2.5-VL only; default (64, 2)).
    The model is untrained (the demo bundle trains it); what matters here is that it is a real
    checkpoint of the real class, loadable by `load_vlm(out_dir)`.
    """
    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(family, corpus, vocab_size=vocab_size)
    extra = {"vision": vision} if vision and family == "qwen2_5_vl" else {}
    model, image_processor, template = _BUILDERS[family](
        tokenizer, hidden, layers, image_size, **extra
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    # Only tokenizer + image processor are saved: the Qwen2.5-VL processor cannot be built
    # without torchvision (it insists on a video processor), and cagul builds prompts itself.
    tokenizer.chat_template = template
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    return out
