"""`python -m cagul audit --attack pgd --eps 4/255[,8/255]`: the worst case beside the rows.

The audit's rows are the average case; with `--attack pgd` each prompt is also attacked at
every budget (`cagul.attacks.worst_case`): gate evasion for CAGUL (per distinct photo) and
answer recovery for every method. The answer an attacker wants back is the prompt's own
`"target"` when the prompts file gives one, else the base model's answer to the prompt (what
the model memorised; `target_source` says which, per row, so nothing is guessed silently).
A progress bar on stderr counts PGD steps.
"""

from __future__ import annotations

from cagul.attacks.pgd import Budget, EpsError, parse_eps

ATTACKS = ("pgd",)
DEFAULT_EPS = "4/255"


def attack_budgets(attack: str | None, eps: str | None) -> list[Budget]:
    """The budgets an audit command asks for ([] without --attack); `EpsError` on bad input,
    raised before any model is loaded."""
    if attack is None:
        if eps is not None:
            raise EpsError("--eps needs --attack pgd")
        return []
    if attack not in ATTACKS:
        raise EpsError(f"--attack {attack!r}: known attacks are {', '.join(ATTACKS)}")
    return parse_eps(DEFAULT_EPS if eps is None else eps)


def audit_worst_case(
    vlm,
    model,
    rows: list[dict],
    images: list[str],
    budgets: list[Budget],
    *,
    steps: int = 10,
    seed: int = 0,
) -> dict:
    """The `worst_case` section of an audit's JSON for its `rows` (with `base_answer`) and the
    prompt image files `images`."""
    from cagul.attacks.worst_case import AttackSettings, attack_units, worst_case
    from cagul.progress import Bar

    items = []
    for row, image in zip(rows, images, strict=True):
        given = row.get("target")
        target = given if isinstance(given, str) and given.strip() else row["base_answer"]
        items.append(
            {
                "image": image,
                "question": row["question"],
                "keywords": row["keywords"],
                "target": target,
                "target_source": "prompt" if target is given else "base",
            }
        )
    settings = AttackSettings(steps=steps, seed=seed)
    bar = Bar("worst case (PGD steps)", total=attack_units(model, items, budgets, settings))
    try:
        out = worst_case(model, vlm, items, budgets, settings, progress=bar.advance)
    finally:
        bar.close()
    for budget in out["budgets"]:
        for row, item in zip(budget["answer_recovery"]["rows"], items, strict=True):
            row["target_source"] = item["target_source"]
    return out
