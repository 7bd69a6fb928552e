"""What every tab shares, loaded once per process: the base VLM, the dataset, the database and
the adapters already loaded over that VLM.

The base model is the expensive part (seconds to load, hundreds of MB on a real checkpoint), so
it is loaded at start and never per click; adapters are small and loaded on first use, after
their stored sha256 and base fingerprint have been checked (`storage.verify_adapter`).

At first start the shipped demo adapter (`assets/demo/adapters/forget10`, a CAGUL adapter for
the bundle's default split) is registered as a stored Adapter with its report, so the demo
shows "after unlearning" at once; adapters trained later by the queue appear beside it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

import storage
from cagul.data import PRIVATE_CATEGORIES, UnknownIdError, load_dataset, make_split, pair_id
from cagul.data.format import FiuDataset, Individual
from cagul.data.splits import Split
from cagul.paths import DEMO_DIR, default_data_dir, default_model_dir

DEMO_ADAPTER_DIR = DEMO_DIR / "adapters" / "forget10"
DEMO_ADAPTER_REPORT = DEMO_DIR / "reports" / "cagul-forget10.json"
# Ids are `Integer` columns: 32-bit on PostgreSQL, so that is the range both backends store.
MAX_DB_ID = 2**31 - 1


class StudioError(ValueError):
    """Something a user asked for does not exist or cannot be used (message is for the page)."""


class UnknownAdapterError(StudioError):
    """No stored adapter has this id."""


class UnknownPersonError(StudioError):
    """No person of the dataset has this id."""


@dataclass(frozen=True)
class PairRef:
    """One dataset question of a person, as the Explore tab offers it."""

    unique_id: str
    pair_index: int
    question: str
    answer: str
    keywords: tuple[str, ...]
    category: str
    private: bool


class Studio:
    """The loaded model, data and database behind the app (one per process)."""

    def __init__(
        self,
        *,
        model_dir: str | Path | None = None,
        data_dir: str | Path | None = None,
        database_url: str | None = None,
        device: str | None = None,
    ) -> None:
        from cagul.artifacts import base_fingerprint
        from cagul.models import load_vlm

        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.vlm = load_vlm(self.model_dir, device=device or "cpu")
        self.dataset: FiuDataset = load_dataset(self.data_dir)
        self.fingerprint = base_fingerprint(self.vlm)
        self.db = storage.connect(database_url, upgrade=True)
        # One model, many request threads: generation is not re-entrant across hooks.
        self.model_lock = threading.Lock()
        self._adapters: dict[int, object] = {}
        self._matcher = None
        self.register_demo_adapter()

    def matcher(self):
        """The photo → person matcher (`cagul.match`); its gallery is embedded on first use."""
        if self._matcher is None:
            from cagul.match import PersonMatcher

            self._matcher = PersonMatcher(self.vlm, self.dataset, lock=self.model_lock)
        return self._matcher

    # ---- people and questions ------------------------------------------------------------
    def person(self, unique_id: str) -> Individual:
        try:
            return self.dataset.by_id(str(unique_id))
        except UnknownIdError as e:
            raise UnknownPersonError(f"no person with id {unique_id!r} in the dataset") from e

    def forgotten_ids(self) -> set[str]:
        """Everyone some stored adapter forgets (marked in the person pickers)."""
        return {i for row in self.adapter_rows() for i in row.config.get("forget_ids", [])}

    def person_choices(self) -> list[tuple[str, str]]:
        """(label, id) per person, "ID · name", the forget people marked."""
        forgotten = self.forgotten_ids()
        return [
            (
                f"{p.unique_id} · {p.name}" + ("  ⊘ forget" if p.unique_id in forgotten else ""),
                p.unique_id,
            )
            for p in self.dataset.individuals
        ]

    def pairs(self, unique_id: str) -> list[PairRef]:
        ind = self.person(unique_id)
        return [
            PairRef(
                ind.unique_id,
                j,
                qa.question,
                qa.answer,
                tuple(qa.keywords),
                qa.category,
                qa.category in PRIVATE_CATEGORIES,
            )
            for j, qa in enumerate(ind.qa_list)
        ]

    def pair_choices(self, unique_ids) -> list[tuple[str, str]]:
        """(label, canonical pair id) per pair of the chosen people, for single-pair requests:
        "ID · category · question"."""
        out = []
        for uid in unique_ids or []:
            ind = self.person(uid)
            out += [
                (f"{uid} · {qa.category} · {qa.question}", pair_id(ind, j))
                for j, qa in enumerate(ind.qa_list)
            ]
        return out

    def find_pair(self, unique_id: str | None, question: str) -> PairRef | None:
        """The person's dataset pair asked by `question` (its wording or a paraphrase)."""
        if not unique_id:
            return None
        q = " ".join(question.split()).lower()
        ind = self.person(unique_id)
        for ref, qa in zip(self.pairs(unique_id), ind.qa_list, strict=True):
            wordings = [qa.question, *qa.paraphrased_question]
            if any(" ".join(w.split()).lower() == q for w in wordings):
                return ref
        return None

    def image_of(self, unique_id: str) -> str:
        ind = self.person(unique_id)
        return str(ind.image_file or (self.data_dir / ind.image_path))

    # ---- adapters ------------------------------------------------------------------------
    def adapter_rows(self) -> list[storage.Adapter]:
        with self.db.read() as s:
            return list(s.scalars(select(storage.Adapter).order_by(storage.Adapter.id)).all())

    def row(self, model: type, raw_id, error: type[StudioError], what: str):
        """The stored `model` row with id `raw_id` (as typed: checked to be a number), or
        `error`; None is never returned."""
        try:
            key = int(raw_id)
        except (TypeError, ValueError, OverflowError) as e:  # OverflowError: float("inf")
            raise error(f"no {what} {raw_id!r}: ids are numbers") from e
        if not 1 <= key <= MAX_DB_ID:  # beyond it the database raises, not answers "none"
            raise error(f"no stored {what} with id {key}")
        with self.db.read() as s:
            found = s.get(model, key)
        if found is None:
            raise error(f"no stored {what} with id {key}")
        return found

    def adapter_row(self, adapter_id) -> storage.Adapter:
        return self.row(storage.Adapter, adapter_id, UnknownAdapterError, "adapter")

    def adapter_choices(self) -> list[tuple[str, str]]:
        """(label, id) per stored adapter usable on this base model, newest last."""
        out = []
        for row in self.adapter_rows():
            if row.base_fingerprint != self.fingerprint:
                continue
            who = ", ".join(row.config.get("forget_ids", []))
            pairs = row.config.get("pair_ids") or []
            what = (
                f"{len(pairs)} single pair{'s' if len(pairs) != 1 else ''}"
                if pairs
                else ", ".join(row.config.get("categories", [])) or "every pair"
            )
            out.append((f"#{row.id} · {row.method} · forgets {who} ({what})", str(row.id)))
        return out

    def unlearned(self, adapter_id):
        """The unlearned model of a stored Adapter (any registered method), checked against
        its stored sha256 and this base model before first use, then kept loaded."""
        from cagul.artifacts import ArtifactError
        from cagul.methods import load_unlearned

        row = self.adapter_row(adapter_id)
        if row.id not in self._adapters:
            try:
                directory = storage.verify_adapter(row, base_fingerprint=self.fingerprint)
                self._adapters[row.id] = load_unlearned(self.vlm, directory)
            except (storage.AdapterIntegrityError, ArtifactError) as e:
                raise StudioError(f"adapter #{row.id} cannot be used: {e}") from e
        return self._adapters[row.id]

    def adapters(self, adapter_id) -> list:
        """CAGUL's adapters of a stored Adapter (what explains itself); [] for other methods."""
        return list(getattr(self.unlearned(adapter_id), "adapters", []))

    def forget_split(self, adapter_id) -> Split:
        """The split an adapter was trained for (its people, its setting and categories)."""
        cfg = self.adapter_row(adapter_id).config
        cats = cfg.get("categories") or PRIVATE_CATEGORIES
        return make_split(
            self.dataset,
            list(cfg.get("forget_ids", [])),
            cfg.get("setting", "private"),
            private_categories=cats,
            pair_ids=cfg.get("pair_ids") or None,
        )

    def register_demo_adapter(self) -> int | None:
        """Store the shipped demo adapter once (with its report); its id, or None when the
        bundle ships none or it belongs to another base model."""
        cfg_file = DEMO_ADAPTER_DIR / storage.ADAPTER_CONFIG
        weights = DEMO_ADAPTER_DIR / storage.ADAPTER_WEIGHTS
        if not (cfg_file.is_file() and weights.is_file()):
            return None
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
        if config.get("base_fingerprint") != self.fingerprint:
            return None
        digest = storage.sha256_file(weights)
        with self.db.transaction() as s:
            found = s.scalars(
                select(storage.Adapter).where(
                    storage.Adapter.path == str(DEMO_ADAPTER_DIR), storage.Adapter.sha256 == digest
                )
            ).first()
            if found is not None:
                return found.id
            row = storage.Adapter(
                method=config.get("method", "cagul"),
                config=config,
                base_fingerprint=config["base_fingerprint"],
                path=str(DEMO_ADAPTER_DIR),
                sha256=digest,
                size_bytes=weights.stat().st_size,
            )
            s.add(row)
            s.flush()
            if DEMO_ADAPTER_REPORT.is_file():
                report = json.loads(DEMO_ADAPTER_REPORT.read_text(encoding="utf-8"))
                storage.add_metric_report(s, report, adapter_id=row.id, method=row.method)
            storage.record_event(
                s,
                actor="system",
                action="adapter.registered",
                target_type="adapter",
                target_id=row.id,
                details={
                    "path": str(DEMO_ADAPTER_DIR),
                    "sha256": digest,
                    "source": "shipped demo adapter",
                },
            )
            return row.id
