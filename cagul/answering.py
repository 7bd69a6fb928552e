"""Batched greedy answering as FIUBench evaluates: left padding, greedy, at most 50 new
tokens, the answer cut at its first "." (the period kept)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cagul import metrics
from cagul.models import VLM, TokenReplacement

#: FIUBench's answer: the generation up to its first "." (metrics.cut_at_first_period).
cut_answer = metrics.cut_at_first_period


def answer_all(
    vlm: VLM,
    images: Sequence,
    questions: Sequence[str],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 50,
    replacement_for: Callable[[object], TokenReplacement | None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Answers to `questions` about `images`. `replacement_for(batch)` may give a replacement
    per batch (CAGUL's gated encoder)."""
    answers: list[str] = []
    for i in range(0, len(questions), batch_size):
        batch = vlm.prepare(list(images[i : i + batch_size]), list(questions[i : i + batch_size]))
        rep = replacement_for(batch) if replacement_for else None
        answers += [
            cut_answer(t) for t in vlm.generate(batch, rep, max_new_tokens, stop_at_period=True)
        ]
        if progress:
            progress(len(batch))
    return answers


def answer_logprobs(
    vlm: VLM,
    images: Sequence,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 64,
    replacement_for: Callable[[object], TokenReplacement | None] | None = None,
) -> list[dict]:
    """Per sample, the answer tokens' log-probs and, for MinK++, the mean and std of the
    log-prob under each position's full vocabulary distribution (all as float lists).

    The answer's end token is excluded: MinK and truth ratios are about the answer text.
    """
    import torch

    out: list[dict] = []
    for i in range(0, len(questions), batch_size):
        sl = slice(i, i + batch_size)
        batch = vlm.prepare(list(images[sl]), list(questions[sl]), list(answers[sl]))
        rep = replacement_for(batch) if replacement_for else None
        with torch.no_grad():
            logits = vlm.forward(batch, rep)[:, :-1].float()
        labels = batch.labels[:, 1:]
        logp = torch.log_softmax(logits, -1)
        for b in range(len(batch)):
            pos = (labels[b] != -100).nonzero().squeeze(-1)[:-1]  # drop the end token
            mu, sigma = metrics.vocab_moments(logp[b, pos].cpu().numpy())
            out.append(
                {
                    "logprobs": logp[b, pos, labels[b, pos]].tolist(),
                    "mu": mu.tolist(),
                    "sigma": sigma.tolist(),
                }
            )
    return out
