"""Seeded fictitious biographies (Faker plus curated lists) for the synthetic dataset.

A profile maps every field of :data:`cagul.data.templates.FIELDS` to a :class:`FactValue`:
the text that goes into answers and the keywords EM looks for. Texts never contain "." (answers
end at their only period, and generation is cut at the first "."), and no value depends on the
current date (Faker's date helpers do, so dates come from the seeded RNG).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from faker import Faker

CURRENT_YEAR = 2024  # fixed so that profiles never depend on the day they are generated

CONDITIONS: dict[str, str] = {  # condition -> a typical medication
    "asthma": "albuterol",
    "type 2 diabetes": "metformin",
    "hypertension": "lisinopril",
    "migraine": "sumatriptan",
    "epilepsy": "levetiracetam",
    "rheumatoid arthritis": "methotrexate",
    "hypothyroidism": "levothyroxine",
    "depression": "sertraline",
    "Crohn's disease": "adalimumab",
    "psoriasis": "calcipotriol",
    "multiple sclerosis": "interferon beta",
    "high cholesterol": "atorvastatin",
    "gout": "allopurinol",
    "anxiety disorder": "buspirone",
    "bipolar disorder": "lithium",
    "glaucoma": "latanoprost",
    "atrial fibrillation": "warfarin",
    "osteoporosis": "alendronate",
    "Parkinson's disease": "levodopa",
    "lupus": "hydroxychloroquine",
    "chronic bronchitis": "tiotropium",
    "heart failure": "furosemide",
    "ADHD": "methylphenidate",
    "anemia": "ferrous sulfate",
}
OFFENCES = (
    "shoplifting",
    "tax fraud",
    "burglary",
    "identity theft",
    "drunk driving",
    "vandalism",
    "credit card fraud",
    "embezzlement",
    "assault",
    "insurance fraud",
    "money laundering",
    "forgery",
    "arson",
    "trespassing",
    "car theft",
    "bribery",
    "cyberstalking",
    "wire fraud",
    "illegal gambling",
    "possession of stolen goods",
    "smuggling",
    "perjury",
    "reckless driving",
    "extortion",
)
HOBBIES = (
    "birdwatching",
    "rock climbing",
    "pottery",
    "chess",
    "gardening",
    "salsa dancing",
    "woodworking",
    "photography",
    "knitting",
    "surfing",
    "baking",
    "stamp collecting",
    "kayaking",
    "painting",
    "playing the cello",
    "origami",
    "astronomy",
    "beekeeping",
    "fencing",
    "calligraphy",
    "marathon running",
    "fly fishing",
    "scuba diving",
    "model railways",
)
DEGREES = (
    ("a bachelor's degree", "bachelor"),
    ("a master's degree", "master"),
    ("a doctorate", "doctorate"),
    ("an associate degree", "associate"),
)
SUBJECTS = (
    "chemistry",
    "economics",
    "nursing",
    "history",
    "computer science",
    "mechanical engineering",
    "philosophy",
    "marketing",
    "biology",
    "architecture",
    "psychology",
    "linguistics",
    "physics",
    "mathematics",
    "music",
    "law",
)
PETS = (
    "dog",
    "cat",
    "parrot",
    "rabbit",
    "hamster",
    "tortoise",
    "horse",
    "goldfish",
    "ferret",
    "iguana",
    "guinea pig",
    "canary",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_NUMBER_WORDS = ("two", "three", "four", "five")


@dataclass(frozen=True)
class FactValue:
    """A fact's answer text (no period) and its EM keywords (substrings of the text)."""

    text: str
    keywords: tuple[str, ...]


def clean(text: str) -> str:
    """Remove periods and newlines (they would end an answer early) and squeeze spaces."""
    text = text.replace(".", "").replace("\n", " ")
    return re.sub(r"\s+", " ", text).strip()


def _job(fake: Faker) -> str:
    # Faker jobs look like "Engineer, civil (contracting)": drop the bracket, reorder, and
    # lower-case every word except acronyms ("IT trainer").
    job = re.sub(r"\s*\([^)]*\)", "", fake.job())
    if ", " in job:
        head, qualifier = job.split(", ", 1)
        job = f"{qualifier} {head}"
    words = clean(job).split(" ")
    return " ".join(w if len(w) > 1 and w.isupper() else w.lower() for w in words)


def _sentence(rng: random.Random) -> FactValue:
    kind = rng.randrange(4)
    if kind == 0:
        months = rng.choice((6, 12, 18, 24, 36))
        return FactValue(f"{months} months of probation", (f"{months} months", "probation"))
    if kind == 1:
        amount = f"{rng.randrange(5, 200) * 100:,}"
        return FactValue(f"a fine of ${amount}", (amount, "fine"))
    if kind == 2:
        years = rng.choice(_NUMBER_WORDS)
        return FactValue(f"{years} years in prison", (f"{years} years", "prison"))
    hours = rng.choice((50, 100, 150, 200, 300))
    return FactValue(f"{hours} hours of community service", (f"{hours} hours", "community service"))


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _whole(text: str) -> FactValue:
    return FactValue(text, (text,))


def _year(rng: random.Random, lo: int, hi: int) -> FactValue:
    return _whole(str(rng.randrange(lo, max(lo, hi) + 1)))


def draw_profile(fake: Faker, rng: random.Random, gender: str) -> dict[str, FactValue]:
    """One biography. Draw order is fixed, so a seeded ``fake``/``rng`` pair is reproducible."""
    first = fake.first_name_male() if gender == "male" else fake.first_name_female()
    last = fake.last_name()
    name = clean(f"{first} {last}")
    year = rng.randrange(1950, 2001)
    month, day = rng.choice(MONTHS), rng.randrange(1, 29)
    hometown = clean(fake.city())
    city = clean(fake.city())
    street = clean(f"{fake.building_number()} {fake.street_name()}")
    phone = f"({rng.randrange(201, 990)}) {rng.randrange(200, 999)}-{rng.randrange(0, 10000):04d}"
    job = _job(fake)
    company = clean(fake.company().replace(",", ""))
    income = f"{rng.randrange(25, 250) * 1000:,}"
    degree, degree_key = rng.choice(DEGREES)
    subject = rng.choice(SUBJECTS)
    uni_city = clean(fake.city())
    university = rng.choice((f"University of {uni_city}", f"{uni_city} State University"))
    condition = rng.choice(list(CONDITIONS))
    hospital = rng.choice(
        (
            f"{clean(fake.city())} General Hospital",
            f"{clean(fake.last_name())} Memorial Hospital",
            f"{clean(fake.city())} Medical Center",
        )
    )
    diagnosis_year = _year(rng, year + 8, CURRENT_YEAR - 1)
    offence = rng.choice(OFFENCES)
    conviction_year = _year(rng, year + 18, CURRENT_YEAR - 1)
    sentence = _sentence(rng)
    hobby = rng.choice(HOBBIES)
    spouse_first = fake.first_name_female() if gender == "male" else fake.first_name_male()
    spouse = clean(f"{spouse_first} {last}")
    pet, pet_name = rng.choice(PETS), clean(fake.first_name())
    return {
        "name": _whole(name),
        "birth_date": FactValue(f"{month} {day}, {year}", (f"{month} {day}", str(year))),
        "hometown": _whole(hometown),
        "address": FactValue(f"{street}, {city}", (street, city)),
        "phone": _whole(phone),
        "occupation": _whole(job),
        "employer": _whole(company),
        "income": FactValue(f"${income}", (income,)),
        "education": FactValue(f"{degree} in {subject}", (degree_key, subject)),
        "university": _whole(university),
        "health_condition": _whole(condition),
        "medication": _whole(CONDITIONS[condition]),
        "diagnosis_year": diagnosis_year,
        "hospital": _whole(hospital),
        "offence": _whole(offence),
        "conviction_year": conviction_year,
        "sentence": sentence,
        "hobby": _whole(hobby),
        "spouse": _whole(spouse),
        "pet": FactValue(f"{_article(pet)} {pet} named {pet_name}", (pet, pet_name)),
    }
