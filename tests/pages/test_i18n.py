"""The pages' message catalogue and formats: every message has its bokmål text; Norwegian
dates, numbers and Europe/Oslo times."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import medloop.pages
from medloop.pages import i18n
from medloop.pages.messages import SENTENCES, explain

PAGES = Path(medloop.pages.__file__).resolve().parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]


def _extracted() -> set[str]:
    keywords = {"_": None, "N_": None, "gettext": None}
    return {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(PAGES), METHODS, keywords=keywords, comment_tags=()
        )
        if isinstance(message, str)
    }


def test_every_message_of_the_pages_has_a_bokmal_translation():
    with (PAGES / "locale/nb/LC_MESSAGES/messages.po").open("rb") as source:
        catalogue = read_po(source)
    missing = sorted(m for m in _extracted() if not (catalogue.get(m) and catalogue.get(m).string))
    assert len(_extracted()) > 50  # the extraction sees the templates and the code
    assert missing == [], "messages without a bokmål text (update messages.po): " + repr(missing)


def test_the_english_catalogue_lists_every_message_too():
    with (PAGES / "locale/en/LC_MESSAGES/messages.po").open("rb") as source:
        catalogue = read_po(source)
    assert sorted(m for m in _extracted() if catalogue.get(m) is None) == []


def test_numbers_and_dates_are_written_the_norwegian_way():
    assert i18n.format_decimal(1.5, "nb") == "1,5"
    assert i18n.format_decimal(2.0, "nb") == "2"
    assert i18n.format_decimal(1.5, "en") == "1.5"
    assert i18n.format_date(date(2026, 12, 5), "nb", "full") == "lørdag 5. desember 2026"


def test_times_are_shown_in_oslo_time_summer_and_winter():
    assert i18n.format_time(datetime(2026, 12, 5, 7, 0, tzinfo=UTC), "nb") == "08:00"
    assert i18n.format_time(datetime(2026, 7, 1, 6, 0, tzinfo=UTC), "nb") == "08:00"
    assert i18n.format_datetime(datetime(2026, 12, 5, 7, 0, tzinfo=UTC), "nb") == (
        "5. des. 2026 kl. 08:00"
    )


def test_an_unknown_language_falls_back_to_bokmal():
    assert i18n.language_of("de") == "nb" and i18n.language_of(None) == "nb"
    assert i18n.gettext_for("de")("Sign out") == "Logg ut"


def test_every_refusal_sentence_has_its_bokmal_text():
    translate = i18n.gettext_for("nb")
    untranslated = [code for code, (_, text) in SENTENCES.items() if translate(text) == text]
    assert untranslated == []


def test_a_refusal_is_explained_next_to_its_field_in_the_readers_language():
    from medloop.domain.administration import ScannedPackExpired
    from medloop.domain.medication_list import StaleListVersion

    expired = explain(ScannedPackExpired("the pack expired on 2026-11-30"), "nb")
    assert expired.field == "pack" and expired.text == "Denne pakningen er utløpt. Ikke bruk den."
    assert explain(ScannedPackExpired("x"), "en").text == "This pack has expired. Do not use it."
    changes = [{"list_version": 4, "author": "Anja Fos Eidsvik", "entries": []}]
    stale = explain(StaleListVersion("stale", current_version=4, changes_since=changes), "nb")
    assert stale.stale and stale.status == 412 and stale.changes == changes
    assert stale.text.startswith("Noen andre endret listen")


def test_a_refusal_without_its_own_sentence_still_says_nothing_was_saved():
    from medloop.domain.errors import DomainError, error_codes

    code, cls = next(
        (c, k)
        for c, k in sorted(error_codes().items())
        if c not in SENTENCES and k.__init__ is DomainError.__init__
    )
    found = explain(cls("technical detail"), "nb")
    assert found.text == f"Ikke lagret: forespørselen ble avvist ({code})."
    assert "technical detail" not in found.text
