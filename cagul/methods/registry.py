"""The one list of unlearning methods, by name: torch-free, so storage and the job queue can
validate a request's method without importing torch (or anything heavy).

Every consumer reads this list: `python -m cagul unlearn --method`, the job runner (an unknown
name is a permanent job error), storage's request validation (an unknown name is refused at
submission, so no request is stored that the worker cannot run) and the app's method choices.
The implementation of each method lives in the module named here and is imported only when a
method is trained or loaded (`cagul.methods.get_method`).
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownMethodError(ValueError):
    """A method name that is not registered."""


@dataclass(frozen=True)
class MethodInfo:
    """What a method is called, where it lives and how the app should describe it."""

    name: str
    module: str
    title: str
    explains: bool  # whether its unlearned model can say why (forget probability, tokens)


_INFOS = (
    MethodInfo(
        "cagul",
        "cagul.methods.cagul.method",
        "CAGUL (frozen VLM, gated visual-token rewrite)",
        True,
    ),
    MethodInfo("ga", "cagul.methods.ga", "Gradient ascent (LoRA)", False),
    MethodInfo("ga_gd", "cagul.methods.ga_gd", "Gradient ascent + gradient descent (LoRA)", False),
    MethodInfo("ga_kl", "cagul.methods.ga_kl", "Gradient ascent + KL to the base (LoRA)", False),
    MethodInfo("po_gd", "cagul.methods.po_gd", "Refusal PO + gradient descent (LoRA)", False),
    MethodInfo("npo", "cagul.methods.npo", "Negative preference optimisation + GD (LoRA)", False),
    MethodInfo(
        "retrain", "cagul.methods.retrain", "Retrain on the retain set (full fine-tune)", False
    ),
    MethodInfo(
        "viker",
        "cagul.methods.viker",
        "ViKeR: visual-guided key-token regularisation (LoRA)",
        False,
    ),
)

#: Every registered method's info, by name.
INFOS: dict[str, MethodInfo] = {m.name: m for m in _INFOS}
#: The registered method names, in display order.
NAMES: tuple[str, ...] = tuple(INFOS)


def check_method(name: str) -> str:
    """`name` when it is registered, else UnknownMethodError naming the choices."""
    if name not in INFOS:
        raise UnknownMethodError(f"method {name!r} is not available; choose one of {NAMES}")
    return name
