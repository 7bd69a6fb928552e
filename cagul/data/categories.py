"""Question categories and the keyword rules that derive a category from a question.

The synthetic generator writes a ``category`` on every QA pair. The released FIUBench
``full.json`` has none, so :func:`derive_category` assigns one from the question text.

Rules (case-insensitive substring/regex tests on the question; the **first** matching rule
wins, so the private categories are tested before the generic ones — a question such as
"What is the name of the hospital treating this person?" is *health*, not *name*):

==============  ==========================================================================
category        the question mentions …
==============  ==========================================================================
health          health, medical, medicine, medication, diagnos*, illness, disease,
                condition, treat*, hospital, clinic, doctor, physician, symptom, allerg*,
                prescri*, therapy, chronic, surgery, ailment
criminal        crime, criminal, arrest*, convict*, offen[cs]e, charged, sentence*, prison,
                jail, court, police, probation, felony, misdemeanor, legal trouble,
                law enforcement, guilty
income          income, salary, earn*, wage, paid, make a year / per year
phone           phone, telephone, contact number, reach … by, dial
address         address, live, lives, living, reside*, residence, street, home located
birth           birth*, born, date of birth, birthday
hometown        hometown, grew/grow up, come from, comes from, native town, originally from
occupation      occupation, job, profession, career, work*, employ*, company
education       education, degree, universit*, college, school, stud*, graduat*, academic
family          married, spouse, wife, husband, partner
hobby           hobby, hobbies, free time, spare time, pastime, leisure, enjoy*, for fun
pet             pet, animal
name            name, called
other           anything else
==============  ==========================================================================

Only *health* and *criminal* matter for the paper's private setting (docs/architecture.md); the other
labels are informative (reports, the Explore tab) and may be coarse on real data.
"""

from __future__ import annotations

import re

#: The categories the paper forgets in its private setting (docs/architecture.md).
PRIVATE_CATEGORIES: frozenset[str] = frozenset({"health", "criminal"})

# Ordered: first match wins (see the module docstring for why the private ones come first).
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "health",
        (
            r"health",
            r"medical",
            r"medicine",
            r"medication",
            r"diagnos",
            r"illness",
            r"disease",
            r"condition",
            r"treat",
            r"hospital",
            r"clinic",
            r"doctor",
            r"physician",
            r"symptom",
            r"allerg",
            r"prescri",
            r"therapy",
            r"chronic",
            r"surgery",
            r"ailment",
        ),
    ),
    (
        "criminal",
        (
            r"crime",
            r"criminal",
            r"arrest",
            r"convict",
            r"offen[cs]e",
            r"charged",
            r"sentence",
            r"prison",
            r"jail",
            r"court",
            r"police",
            r"probation",
            r"felony",
            r"misdemeanou?r",
            r"legal trouble",
            r"law enforcement",
            r"guilty",
        ),
    ),
    ("income", (r"income", r"salary", r"earn", r"wage", r"\bpaid\b", r"per year", r"a year\b")),
    ("phone", (r"phone", r"contact number", r"\breach\b.*\bby\b", r"\bdial")),
    (
        "address",
        (r"address", r"\blives?\b", r"\bliving\b", r"resid", r"street", r"home located"),
    ),
    ("birth", (r"birth", r"\bborn\b")),
    (
        "hometown",
        (
            r"hometown",
            r"home town",
            r"grew up",
            r"grow up",
            r"comes? from",
            r"native",
            r"originally from",
        ),
    ),
    (
        "occupation",
        (r"occupation", r"\bjob\b", r"profession", r"career", r"\bwork", r"employ", r"company"),
    ),
    (
        "education",
        (
            r"education",
            r"degree",
            r"universit",
            r"college",
            r"school",
            r"\bstud",
            r"graduat",
            r"academic",
        ),
    ),
    ("family", (r"married", r"spouse", r"\bwife\b", r"husband", r"partner")),
    (
        "hobby",
        (r"hobb", r"free time", r"spare time", r"pastime", r"leisure", r"\benjoy", r"for fun"),
    ),
    ("pet", (r"\bpets?\b", r"animal")),
    ("name", (r"\bname", r"\bcalled\b")),
)

_COMPILED = tuple((cat, re.compile("|".join(pats))) for cat, pats in _RULES)

#: Every label :func:`derive_category` can return.
CATEGORIES: tuple[str, ...] = tuple(cat for cat, _ in _RULES) + ("other",)


def derive_category(question: str) -> str:
    """Return the category of ``question`` by the ordered keyword rules of this module."""
    text = question.lower()
    for category, pattern in _COMPILED:
        if pattern.search(text):
            return category
    return "other"
