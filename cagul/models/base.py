"""The one small interface every VLM family implements, and what they share.

A `VLM` wraps a frozen transformers model loaded from a local directory plus its tokenizer and
image processor. It gives CAGUL exactly four things:

* `prepare(images, questions, answers=None)` -> `Batch`: the model inputs built from the
  checkpoint's own chat template, with the question's rows, the answer's label rows and each
  image's visual-token layout (token count and patch grid, derived from processor/config).
* `visual_tokens(batch)`: what enters the language model, one `[n_i, d]` tensor per image.
* `cross_modal_scores(batch)`: per cross-modal attention layer, the mean attention over heads and
  over the question's rows to every visual token (docs/architecture.md). Hooks on the attention modules
  form only that block while the model runs SDPA (`cagul.models.scores`); the eager
  `output_attentions` path stays as the tests' reference (`method="eager"`).
* `forward` / `loss` / `generate` with an optional `TokenReplacement`: a trainable module that
  rewrites a chosen subset of the visual tokens of chosen samples. The VLM's parameters are
  frozen (`requires_grad=False`), so only the module gets gradients.

Replacement happens in a forward hook on the module whose output *is* the visual tokens
(`visual` for Qwen2.5-VL, `multi_modal_projector` for LLaVA, the cross-attention layers for
Mllama), so that `generate` with its KV cache sees the replaced tokens at prefill exactly as
`forward` does, and decoding steps reuse them without recomputation.

Prompts are assembled segment by segment (template prefix, image placeholder expanded to the
image's token count, question, template suffix, answer) rather than by the multimodal processor:
this locates the question's rows exactly, and it works where a processor cannot be built (the
Qwen2.5-VL processor demands a video processor, which needs torchvision; we have no CPU build).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from cagul.errors import AttentionUnavailableError, InputError, UnsupportedModelError, VLMError

SENTINEL = "\u2063CAGUL_QUESTION\u2063"


@dataclass
class ImageLayout:
    """Where one image's visual tokens are and how they tile the picture.

    `grid_index[r * cols + c]` is the visual-token index of patch (r, c); tokens that are not
    patches (Mllama's per-tile class token) are in no cell but are still tokens.
    """

    n_tokens: int
    grid: tuple[int, int]
    grid_index: torch.Tensor


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    question_mask: torch.Tensor  # [B, T] bool: the question's own rows, nothing of the template
    labels: torch.Tensor | None  # [B, T] long, -100 except the answer (and its end token)
    layouts: list[ImageLayout]
    prompt_lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return self.inputs["input_ids"].shape[0]

    def to(self, device: torch.device | str) -> Batch:
        self.inputs = {k: v.to(device) for k, v in self.inputs.items()}
        self.question_mask = self.question_mask.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self


@dataclass
class TokenReplacement:
    """Replace visual tokens `indices[b]` of sample b by `module(tokens)`; None leaves b as is.

    `indices[b]` is a LongTensor `[k]` (the same set for every layer) or, for cross-attention
    families, `[L, k]` with one set per cross-modal layer (in `cross_modal_layers` order).
    `visual_tokens`, when given, substitutes precomputed (cached) tokens for the vision tower's
    output before the replacement is applied. `modules`, when given, overrides `module` per
    sample (stacked adapters: each flagged sample gets the encoder of the adapter that flagged
    it).
    """

    module: nn.Module | None
    indices: list[torch.Tensor | None]
    visual_tokens: list[torch.Tensor] | None = None
    modules: list[nn.Module | None] | None = None

    def module_for(self, b: int) -> nn.Module | None:
        return self.modules[b] if self.modules is not None else self.module


def replace_tokens(
    tokens: torch.Tensor, module: nn.Module | None, idx: torch.Tensor | None
) -> torch.Tensor:
    """Return a copy of `tokens` [n, d] with rows `idx` passed through `module` (autograd-safe)."""
    if idx is None or module is None or idx.numel() == 0:
        return tokens
    idx = idx.to(tokens.device)
    new_rows = module(tokens[idx]).to(tokens.dtype)
    return tokens.index_copy(0, idx, new_rows)


class VLM:
    """A frozen VLM of one family. Subclasses fill in the family specifics."""

    family: str = ""
    attention: str = ""  # "joint" (self-attention over text and image) or "cross"
    max_question_chars = 1000
    max_image_pixels = 40_000_000
    image_cache_size = 4096

    def __init__(self, path: Path, model, tokenizer, image_processor, chat_template: str):
        self.path = Path(path)
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.image_processor = image_processor
        self.chat_template = chat_template
        self._image_cache: dict = {}
        self.config = model.config
        self._prefix, self._suffix = self._template_parts()

    # ---- family hooks -------------------------------------------------------------------
    @property
    def image_token(self) -> str:
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        return self.config.text_config.hidden_size

    @property
    def cross_modal_layers(self) -> list[int]:
        """Indices of the decoder layers whose attention mixes text and image."""
        raise NotImplementedError

    def _process_images(self, images: list[Image.Image]) -> tuple[dict, list[ImageLayout]]:
        raise NotImplementedError

    def _image_token_count(self, layout: ImageLayout) -> int:
        """How many placeholder tokens the prompt holds for this image."""
        return layout.n_tokens

    def _extra_inputs(self, input_ids: torch.Tensor, layouts, image_inputs) -> dict:
        return {}

    def _hooks(self, replacement: TokenReplacement, batch: Batch) -> list:
        """Register forward hooks that apply `replacement`; return their handles."""
        raise NotImplementedError

    def _capture_hook(self, store: list) -> list:
        """Register hooks that append each image's visual tokens to `store`."""
        raise NotImplementedError

    def _score_layers(self, attentions, batch: Batch) -> list[torch.Tensor]:
        raise NotImplementedError

    def _score_modules(self) -> list[nn.Module]:
        """The attention module of each cross-modal layer, in `cross_modal_layers` order."""
        raise NotImplementedError

    def _layer_scorer(self, batch: Batch):
        """The pre-hook body (`cagul.models.scores.LayerScorer`) that scores one layer."""
        raise NotImplementedError

    # ---- prompts ------------------------------------------------------------------------
    def _template_parts(self) -> tuple[str, str]:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": SENTINEL}]}
        ]
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        if text.count(SENTINEL) != 1 or text.count(self.image_token) != 1:
            raise UnsupportedModelError(
                f"the chat template of {self.path} does not place one image and one question "
                "in a user turn; cannot build prompts"
            )
        prefix, suffix = text.split(SENTINEL)
        return prefix, suffix

    def _encode(self, text: str) -> list[int]:
        """Token ids of template text: its control tokens (`<|im_start|>`, ...) are real."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_text(self, text: str) -> list[int]:
        """Token ids of user or data text (questions, answers), which must stay text.

        A question typed as `<|im_end|><|im_start|>system...<|image_pad|>` would otherwise
        become real control tokens and inject prompt structure (or fake image slots).
        `split_special_tokens` makes the tokenizer spell such strings as ordinary pieces; if
        a tokenizer still yields a control id, the text is refused rather than passed on.
        """
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        control = self._control_ids()
        if any(i in control for i in ids):
            raise InputError("the text contains chat-template control tokens")
        return ids

    def _control_ids(self) -> frozenset[int]:
        """Ids of the tokenizer's special and added tokens (cached: the vocabulary is fixed)."""
        cached = getattr(self, "_control_id_cache", None)
        if cached is None:
            tok = self.tokenizer
            cached = frozenset(tok.all_special_ids) | frozenset(
                getattr(tok, "added_tokens_decoder", {}) or {}
            )
            self._control_id_cache = cached
        return cached

    def _check_question(self, q) -> str:
        """The question stripped, or InputError (delegates to `cagul.inputs.clean_question`,
        the one edge check the app, REST and CLI share)."""
        from cagul.inputs import clean_question  # cagul.inputs imports this module

        return clean_question(q, max_chars=self.max_question_chars)

    def _check_image(self, img) -> Image.Image:
        """An RGB image, or InputError: delegates to `cagul.inputs.open_image`, which checks
        the declared size before decoding, so a decompression bomb is refused, not raised."""
        from cagul.inputs import UserInputError, open_image  # it imports this module

        if isinstance(img, Image.Image):  # already decoded: only the size can be wrong
            if img.width * img.height > self.max_image_pixels:
                raise UserInputError(
                    f"image has {img.width}x{img.height} pixels; too large "
                    f"(at most {self.max_image_pixels:,})"
                )
            return img.convert("RGB")
        try:
            return open_image(img, max_pixels=self.max_image_pixels)
        except UserInputError as e:
            label = img if isinstance(img, (str, Path)) else "the image"
            raise UserInputError(f"cannot read image {label}: {e}") from e

    def prepare(
        self,
        images: list,
        questions: list[str],
        answers: list[str] | None = None,
    ) -> Batch:
        """Build a left-padded batch. With `answers`, labels cover the answer and its end token."""
        if len(images) != len(questions) or (answers is not None and len(answers) != len(images)):
            raise InputError("images, questions and answers must have the same length")
        if not images:
            raise InputError("empty batch")
        questions = [self._check_question(q) for q in questions]
        image_inputs, layouts = self._images(images)
        bos = self.tokenizer.bos_token
        add_bos = bos is not None and self._needs_bos() and not self._prefix.startswith(bos)
        img_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        rows, qmasks, labels, prompt_lengths = [], [], [], []
        for i, q in enumerate(questions):
            prefix = self._encode(self._prefix)
            if add_bos:
                prefix = [self.tokenizer.bos_token_id] + prefix
            pos = prefix.index(img_id)
            n_img = self._image_token_count(layouts[i])
            prefix = prefix[:pos] + [img_id] * n_img + prefix[pos + 1 :]
            q_ids = self._encode_text(q)
            suffix = self._encode(self._suffix)
            ids = prefix + q_ids + suffix
            qm = [False] * len(prefix) + [True] * len(q_ids) + [False] * len(suffix)
            lab = [-100] * len(ids)
            prompt_lengths.append(len(ids))
            if answers is not None:
                a_ids = self._encode_text(" ".join(answers[i].split()))
                a_ids += [self.tokenizer.eos_token_id]
                ids += a_ids
                qm += [False] * len(a_ids)
                lab += a_ids
            rows.append(ids)
            qmasks.append(qm)
            labels.append(lab)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        question_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        label_t = torch.full((len(rows), width), -100, dtype=torch.long)
        for b, (ids, qm, lab) in enumerate(zip(rows, qmasks, labels, strict=True)):
            off = width - len(ids)
            input_ids[b, off:] = torch.tensor(ids)
            attention_mask[b, off:] = 1
            question_mask[b, off:] = torch.tensor(qm)
            label_t[b, off:] = torch.tensor(lab)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **image_inputs}
        inputs.update(self._extra_inputs(input_ids, layouts, image_inputs))
        batch = Batch(
            inputs=inputs,
            question_mask=question_mask,
            labels=label_t if answers is not None else None,
            layouts=layouts,
            prompt_lengths=prompt_lengths,
        )
        return batch.to(self.device)

    def _images(self, images: list) -> tuple[dict, list[ImageLayout]]:
        """Process images one by one (cached by path: training revisits the same files) and
        stack them; every family's image inputs concatenate along dim 0."""
        parts, layouts = [], []
        for im in images:
            key = None
            if isinstance(im, (str, Path)):
                p = Path(im)
                key = (str(p), p.stat().st_mtime_ns) if p.is_file() else None
            if key is not None and key in self._image_cache:
                inputs, layout = self._image_cache[key]
            else:
                inputs, (layout,) = self._process_images([self._check_image(im)])
                if key is not None:
                    if len(self._image_cache) >= self.image_cache_size:
                        self._image_cache.pop(next(iter(self._image_cache)))
                    self._image_cache[key] = (inputs, layout)
            parts.append(inputs)
            layouts.append(layout)
        stacked = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return stacked, layouts

    def _needs_bos(self) -> bool:
        return False

    # ---- model calls --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @contextlib.contextmanager
    def _replacing(self, replacement: TokenReplacement | None, batch: Batch):
        handles = [] if replacement is None else self._hooks(replacement, batch)
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _inputs_without_tower(self, batch: Batch, replacement: TokenReplacement) -> dict | None:
        """Model inputs that hand the language model `replacement.visual_tokens` (rewritten by
        its module) directly, so the vision tower does not run; None where the family has no
        such entry point (its tower runs and a hook swaps its output, same result)."""
        return None

    def forward(self, batch: Batch, replacement: TokenReplacement | None = None) -> torch.Tensor:
        """Logits [B, T, V]. Gradients flow to `replacement.module` only."""
        if replacement is not None and replacement.visual_tokens is not None:
            direct = self._inputs_without_tower(batch, replacement)
            if direct is not None:
                return self.model(**direct, use_cache=False).logits
        with self._replacing(replacement, batch):
            return self.model(**batch.inputs, use_cache=False).logits

    def loss(self, batch: Batch, replacement: TokenReplacement | None = None) -> torch.Tensor:
        """Per-sample mean next-token NLL over the labelled (answer) tokens, shape [B]."""
        if batch.labels is None:
            raise InputError("loss needs a batch prepared with answers")
        logits = self.forward(batch, replacement)
        return sequence_nll(logits, batch.labels)

    @torch.no_grad()
    def generate(
        self,
        batch: Batch,
        replacement: TokenReplacement | None = None,
        max_new_tokens: int = 50,
        return_logits: bool = False,
        stop_at_period: bool = False,
    ) -> list[str] | tuple[list[str], torch.Tensor]:
        """Greedy answers (new tokens only, special tokens dropped).

        With `return_logits`, also the logits of every generated step, [B, steps, V].
        `stop_at_period` ends each sequence once its text holds a ".": callers that cut the
        answer at its first "." (FIUBench) get the same text without the steps after it.
        """
        inputs = dict(batch.inputs)
        stop = {"stop_strings": ["."], "tokenizer": self.tokenizer} if stop_at_period else {}
        with self._replacing(replacement, batch):
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                output_logits=return_logits,
                return_dict_in_generate=True,
                **stop,
            )
        new = out.sequences[:, inputs["input_ids"].shape[1] :]
        texts = [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        if return_logits:
            return texts, torch.stack(out.logits, dim=1)
        return texts

    @torch.no_grad()
    def visual_tokens(self, batch: Batch) -> list[torch.Tensor]:
        """The tokens that enter the language model, one [n_i, d] tensor per image."""
        store: list[torch.Tensor] = []
        handles = self._capture_hook(store)
        try:
            self._vision_only(batch)
        finally:
            for h in handles:
                h.remove()
        if len(store) != len(batch):
            raise VLMError(f"captured {len(store)} images' tokens for a batch of {len(batch)}")
        return store

    def _vision_only(self, batch: Batch) -> None:
        self.model(**batch.inputs, use_cache=False)

    @torch.no_grad()
    def cross_modal_scores(
        self,
        batch: Batch,
        replacement: TokenReplacement | None = None,
        method: str = "hooks",
    ) -> list[torch.Tensor]:
        """Per sample, a [L, n_i] tensor: layer l's score of every visual token (docs/architecture.md).

        `method="hooks"` (the default) keeps the model on its own attention implementation
        (SDPA) and lets pre-hooks on the cross-modal attention modules form only the
        question-rows x image-columns block (`cagul.models.scores`): memory stays at the plain
        forward's. `method="eager"` is the reference the tests pin the hooks to: it switches to
        eager attention and reads `output_attentions`, all layers' full S x S maps.
        """
        if method == "eager":
            return self.eager_cross_modal_scores(batch, replacement)
        if method != "hooks":
            raise ValueError(f"method must be 'hooks' or 'eager', not {method!r}")
        from .scores import per_sample, recording

        scorer = self._layer_scorer(batch)
        with self._replacing(replacement, batch), recording(self._score_modules(), scorer) as got:
            # Only the last position's logits: the scores need no vocabulary projection.
            self.model(**batch.inputs, use_cache=False, logits_to_keep=1)
        return per_sample(got, self.cross_modal_layers, len(batch))

    @torch.no_grad()
    def eager_cross_modal_scores(
        self, batch: Batch, replacement: TokenReplacement | None = None
    ) -> list[torch.Tensor]:
        """The reference scores from eager `output_attentions` (full S x S maps per layer).

        Switches the model to eager attention for this call (SDPA returns no weights), then
        restores the previous implementation.
        """
        previous = self.model.config._attn_implementation
        if previous != "eager":
            self.model.set_attn_implementation("eager")
        try:
            with self._replacing(replacement, batch):
                out = self.model(**batch.inputs, use_cache=False, output_attentions=True)
        finally:
            if previous != "eager":
                self.model.set_attn_implementation(previous)
        attentions = getattr(out, "attentions", None)
        if not attentions:
            raise AttentionUnavailableError(
                f"{type(self.model).__name__} returned no attention weights under eager attention"
            )
        return self._score_layers(attentions, batch)

    def info(self) -> dict:
        """The `info` record (docs/architecture.md), measured on a blank image (the grid depends on size)."""
        image_size = self.default_image_size()
        probe = Image.new("RGB", image_size, (127, 127, 127))
        _, layouts = self._process_images([probe])
        return {
            "family": self.family,
            "attention": self.attention,
            "hidden_size": self.hidden_size,
            "visual_tokens": layouts[0].n_tokens,
            "grid": list(layouts[0].grid),
            "cross_modal_layers": self.cross_modal_layers,
            "image_size": list(image_size),
            "model_class": type(self.model).__name__,
            "path": str(self.path),
        }

    def default_image_size(self) -> tuple[int, int]:
        raise NotImplementedError


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample mean NLL of the labelled next tokens; [B]. Samples with no labels give 0."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    tok = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.clamp(min=0).reshape(-1),
        reduction="none",
    ).view(shift_labels.shape)
    tok = tok * mask
    return tok.sum(1) / mask.sum(1).clamp(min=1)


def row_major_grid(rows: int, cols: int, offset: int = 0) -> torch.Tensor:
    return torch.arange(rows * cols, dtype=torch.long) + offset


def joint_scores(
    attentions, batch: Batch, image_mask: torch.Tensor, layers: list[int]
) -> list[torch.Tensor]:
    """Scores for joint self-attention: the question-rows x image-columns block, averaged.

    `image_mask` [B, T] marks the positions holding the image's tokens, in token order.
    """
    per_sample = []
    for b in range(len(batch)):
        rows = batch.question_mask[b].nonzero().squeeze(-1)
        cols = image_mask[b].nonzero().squeeze(-1)
        if rows.numel() == 0 or cols.numel() == 0:
            raise AttentionUnavailableError(f"sample {b} has no question rows or no image tokens")
        layer_scores = []
        for layer in layers:
            a = attentions[layer][b].float()  # [H, T, T]
            layer_scores.append(a[:, rows][:, :, cols].mean(dim=(0, 1)))
        per_sample.append(torch.stack(layer_scores))
    return per_sample
