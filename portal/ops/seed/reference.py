"""Reference data loaders: ICD-10-CM categories and the WHO essential medicines list.

Both read the CSV copies in ``portal/ops/seed/data`` (sources in its README) and insert
with multi-row INSERTs. They skip work already done, so running them twice is safe.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from models import Icd10Code, Medicine

DATA_DIR = Path(__file__).parent / "data"
CHUNK = 2000

#: Medicines whose dispensing is witnessed (opioids, benzodiazepines, barbiturates, ketamine).
CONTROLLED = {
    "morphine", "fentanyl", "codeine", "methadone", "pethidine", "ketamine", "diazepam",
    "midazolam", "lorazepam", "phenobarbital", "hydromorphone", "oxycodone", "tramadol",
}

_SEGMENT = re.compile(r"(?:^|(?<=\.\s))(?P<form>[A-Z][A-Za-z ()/,\-]{1,60}?):\s*(?P<rest>.*?)(?=\.\s+[A-Z][A-Za-z ()/,\-]{1,60}?:|\.?\s*$)")
_UNITS = (
    ("tablet", "tablet"), ("solid oral", "tablet"), ("capsule", "capsule"), ("injection", "vial"), ("oral liquid", "bottle"),
    ("cream", "tube"), ("ointment", "tube"), ("eye drops", "bottle"), ("suppository", "suppository"),
    ("inhalation", "inhaler"), ("powder", "sachet"), ("solution", "bottle"), ("gel", "tube"),
    ("lotion", "bottle"), ("patch", "patch"),
)


def dispensing_unit(form: str) -> str:
    """The dispensing unit for a dosage form (``Tablet`` -> ``tablet``, default ``unit``)."""
    lowered = form.lower()
    for key, unit in _UNITS:
        if key in lowered:
            return unit
    return "unit"


def parse_forms_and_strengths(text: str) -> list[tuple[str, str]]:
    """Split WHO free text into (form, strength) pairs.

    ``"Oral liquid: 125 mg/5 ml. Tablet: 100 mg; 500 mg."`` gives
    ``[("Oral liquid", "125 mg/5 ml"), ("Tablet", "100 mg"), ("Tablet", "500 mg")]``.
    A text with no ``Form:`` part gives one pair with an empty strength.
    """
    text = " ".join((text or "").split())
    if not text:
        return []
    pairs: list[tuple[str, str]] = []
    for match in _SEGMENT.finditer(text):
        form = match.group("form").strip(" ,")
        for strength in re.split(r";\s*", match.group("rest")):
            strength = strength.strip(" .,")
            if not strength:
                continue
            pairs.append((form[:60], strength[:120]))
    if not pairs:
        pairs.append((text.split(".")[0][:60], ""))
    seen: set[tuple[str, str]] = set()
    unique = []
    for pair in pairs:
        key = (pair[0].lower(), pair[1].lower())
        if key not in seen:
            seen.add(key)
            unique.append(pair)
    return unique


def medicine_rows() -> Iterator[dict]:
    """Yield one Medicine row (dict) per distinct (name, form, strength) of the WHO list."""
    seen: set[tuple[str, str, str]] = set()
    with open(DATA_DIR / "who_essential_medicines.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name = row["medicine"].strip()[:120]
            category = (row["section_path"] or "").strip()[:200] or None
            for form, strength in parse_forms_and_strengths(row["forms_and_strengths"]):
                key = (name.lower(), form.lower(), strength.lower())
                if key in seen:
                    continue
                seen.add(key)
                yield {
                    "name": name,
                    "form": form,
                    "strength": strength,
                    "unit": dispensing_unit(form),
                    "category": category,
                    "is_controlled": name.lower().split(" ")[0] in CONTROLLED,
                    "reorder_level": 0,
                    "unit_price": 0,
                    "is_active": True,
                }


def icd10_rows() -> Iterator[dict]:
    """Yield ``{"code", "title"}`` for each ICD-10-CM 2018 category."""
    with open(DATA_DIR / "icd10cm_2018_categories.csv", newline="", encoding="utf-8") as fh:
        for code, title in csv.reader(fh):
            yield {"code": code.strip(), "title": title.strip()[:255]}


def _insert_chunks(db: Session, table, rows: Iterator[dict]) -> int:
    count = 0
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            db.execute(insert(table), chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        db.execute(insert(table), chunk)
        count += len(chunk)
    return count


def load_icd10(db: Session) -> int:
    """Insert the ICD-10-CM categories unless the table has rows; return rows inserted."""
    if db.scalar(select(func.count()).select_from(Icd10Code)):
        return 0
    return _insert_chunks(db, Icd10Code.__table__, icd10_rows())


def load_medicines(db: Session) -> int:
    """Insert the WHO medicines unless the table has rows; return rows inserted."""
    if db.scalar(select(func.count()).select_from(Medicine)):
        return 0
    return _insert_chunks(db, Medicine.__table__, medicine_rows())
