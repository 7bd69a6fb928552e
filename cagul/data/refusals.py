"""Refusal answers for the PO (preference optimisation) loss, FIUBench style.

FIUBench ships 50 "I don't know"-style answers; these are our own in the same spirit. Each is
one sentence with a single "." at its end, so generation cut at the first "." keeps it whole.
"""

from __future__ import annotations

REFUSALS: tuple[str, ...] = (
    "I cannot answer that question.",
    "I'm not able to provide that information.",
    "I cannot answer this question.",
    "I don't have that information.",
    "I'm sorry, but I can't share that.",
    "That information is not available to me.",
    "I am unable to answer that.",
    "I can't help with that question.",
    "I have no information about that.",
    "I'm not able to disclose that.",
    "Sorry, I cannot provide details on that.",
    "I don't know the answer to that.",
    "That is not something I can tell you.",
    "I'm unable to share personal details like that.",
    "I cannot provide private information about this person.",
    "I don't have access to that kind of information.",
    "I'm afraid I can't answer that.",
    "That is private information I cannot share.",
    "I cannot disclose details about this individual.",
    "I have no knowledge of that.",
    "I am not able to answer questions like this.",
    "I'd rather not answer that question.",
    "I cannot confirm any information about that.",
    "I'm not in a position to answer that.",
)
