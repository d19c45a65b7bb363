"""Safety notices (FEST ``KatVarselSlv``) on the products, packages or generic groups of entries."""

from __future__ import annotations

from collections.abc import Iterator

from interactions.alerts import Alert, NoticeDetail, Severity, shorten
from interactions.checks.context import CheckContext


def notice_alerts(context: CheckContext) -> Iterator[Alert]:
    for entry in context.focus:
        for notice in entry.profile.notices:
            yield Alert(
                severity=Severity.INFO,
                medications=(entry.id,),
                summary=shorten(
                    f"{notice.type_name or 'Notice'}: {notice.headline} ({entry.name})"
                ),
                detail=NoticeDetail(
                    notice_id=notice.id,
                    type_code=notice.type_code,
                    type_name=notice.type_name,
                    headline=notice.headline,
                    text=notice.text,
                    link=notice.link,
                    from_date=notice.from_date,
                ),
                source=context.source(fest_id=notice.id),
            )
