"""The pages' languages: Norwegian bokmål (``nb``, the default) and English (``en``).

Every text of a page goes through the message catalogue: templates call ``_()`` (Jinja2's i18n
extension), Python code calls ``gettext_for(lang)``. The catalogues are the ``.po`` files in
``medloop/pages/locale/<lang>/LC_MESSAGES/messages.po`` (source text is English; ``nb`` has a
translation of every message, checked by ``tests/pages/test_i18n.py``). They are compiled in
memory when the app starts (Babel reads the ``.po`` and writes a ``.mo`` into a buffer): no
compiled binary is kept in the repository and no install step can forget to compile.

Dates, times and numbers use the language's locale (``nb_NO``: ``5. des. 2026 08:00``,
``1,5``); moments are shown in Europe/Oslo time, whatever zone they were stored in.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.dates import format_time as _format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal as _format_decimal

from medloop.domain.oslo import OSLO

LANGUAGES = ("nb", "en")
DEFAULT_LANGUAGE = "nb"
LOCALES = {"nb": "nb_NO", "en": "en_GB"}
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue (extracted by Babel); translated where it is shown."""
    return message


def language_of(value: str | None) -> str:
    """A supported language for ``value`` (a cookie), else the default (``nb``)."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (compiled once per process from its ``.po``)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=Locale.parse(LOCALES[lang]))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def gettext_for(lang: str):  # noqa: ANN201 - a gettext function
    return translations(language_of(lang)).gettext


def to_oslo(moment: datetime) -> datetime:
    """``moment`` in Europe/Oslo (a naive moment is taken as UTC, as the store keeps them)."""
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(OSLO)


def format_datetime(moment: datetime | None, lang: str, format: str = "medium") -> str:
    """``5. des. 2026, 08:00`` (nb) in Oslo time; ``short``, ``medium``, ``long`` or a pattern."""
    if moment is None:
        return ""
    pattern = {"medium": "d. MMM y 'kl.' HH:mm", "short": "dd.MM.y HH:mm"}.get(format, format)
    if lang != "nb" and format in ("medium", "short"):
        pattern = {"medium": "d MMM y HH:mm", "short": "dd/MM/y HH:mm"}[format]
    return _format_datetime(to_oslo(moment), pattern, locale=LOCALES[language_of(lang)])


def format_time(moment: datetime | None, lang: str) -> str:
    """``08:00`` in Oslo time."""
    if moment is None:
        return ""
    return _format_time(to_oslo(moment), "HH:mm", locale=LOCALES[language_of(lang)])


def format_date(day: date | None, lang: str, format: str = "medium") -> str:
    """``5. des. 2026`` (nb); ``full`` gives the weekday too (``lørdag 5. desember 2026``)."""
    if day is None:
        return ""
    if isinstance(day, datetime):
        day = to_oslo(day).date()
    return _format_date(day, format, locale=LOCALES[language_of(lang)])


def format_decimal(number: float | int | Decimal | None, lang: str) -> str:
    """``1,5`` and ``1 000`` (nb) — never a trailing ``.0``."""
    if number is None:
        return ""
    return _format_decimal(number, locale=LOCALES[language_of(lang)])
