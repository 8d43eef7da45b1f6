"""The patient pages' translation catalogues are complete and compiled (see portal/patient_pages/i18n.py)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from portal.patient_pages import i18n

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = i18n.TRANSLATIONS_DIR
PO = CATALOGUES / "zh_Hans" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


def _ids(catalog) -> set:
    return {message.id for message in catalog if message.id}


def _source_ids() -> set:
    method_map = [("portal/patient_pages/**.py", "python"), ("portal/patient_pages/templates/**.html", "jinja2")]
    options = {"portal/patient_pages/templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT), method_map, options):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_the_template_and_catalogue_hold_every_message_of_the_sources():
    sources = _source_ids()
    with open(CATALOGUES / "messages.pot", "rb") as f:
        template = _ids(read_po(f))
    with open(PO, "rb") as f:
        catalogue = _ids(read_po(f))
    assert sources - template == set(), "run pybabel extract (see portal/patient_pages/i18n.py)"
    assert template - sources == set(), "messages.pot has messages no longer used: extract again"
    assert catalogue == template, "run pybabel update, then translate"


def test_every_message_is_translated_with_the_same_placeholders():
    with open(PO, "rb") as f:
        catalogue = read_po(f)
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
    problems = [(message.id, errors) for message, errors in catalogue.check() if errors]
    assert problems == []


def test_the_compiled_catalogue_is_up_to_date():
    with open(PO, "rb") as f:
        catalogue = read_po(f)
    compiled = BytesIO()
    write_mo(compiled, catalogue)  # what `pybabel compile` writes, byte for byte
    assert MO.read_bytes() == compiled.getvalue(), "run pybabel compile -d portal/patient_pages/translations -l zh_Hans"


def test_locale_negotiation():
    assert i18n.choose_locale(None, None) == i18n.DEFAULT_LOCALE
    assert i18n.choose_locale(None, "zh-CN,zh;q=0.9") == "zh_Hans"
    assert i18n.choose_locale(None, "en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.choose_locale(None, "en;q=0.5, zh;q=0.8") == "zh_Hans"
    assert i18n.choose_locale(None, "de-DE, fr;q=0.9") == i18n.DEFAULT_LOCALE
    assert i18n.choose_locale(None, "zh;q=0, en;q=0.1") == "en"
    assert i18n.choose_locale("en", "zh-CN") == "en"
    assert i18n.choose_locale("zh", "en") == "zh_Hans"
    assert i18n.choose_locale("klingon", "zh-CN") == "zh_Hans"


def test_dates_times_and_money_per_language():
    from datetime import date, time

    en, zh = i18n.Formatter("en"), i18n.Formatter("zh_Hans")
    day = date(2026, 11, 23)
    assert en.day(day) == "Mon, Nov 23" and zh.day(day) == "11月23日周一"
    assert en.full_date(day) == "Monday, November 23, 2026" and zh.full_date(day) == "2026年11月23日星期一"
    assert en.time(time(8, 5)) == zh.time(time(8, 5)) == "08:05"
    assert en.money(5000) == "¥50.00" and en.money(123456) == "¥1,234.56" and zh.money(0) == "免费"
    assert (en.part_of_day(time(8)), zh.part_of_day(time(13, 30)), en.part_of_day(time(18))) == (
        "Morning", "下午", "Evening")
    assert zh.data("Cardiology") == "心血管内科" and zh.data("Not A Standard Name") == "Not A Standard Name"
    assert zh.data_matches("心血管") == ("Cardiology",) and en.data_matches("card") == ()
