"""A signed medication review as a printable PDF for the resident's record (WeasyPrint renders
the HTML built here; nothing is decided here, the review is shown as it was signed)."""

from __future__ import annotations

from html import escape

from interactions.review_rules import shipped_review_criteria
from medloop.domain.errors import DomainError
from medloop.domain.oslo import OSLO, local_date
from medloop.domain.review import MedicationReview

# The PDF's own words, in bokmål (the default, for the resident's record) and English; the
# criteria's summaries come from the criteria files in the same language.
TEXTS: dict[str, dict[str, str]] = {
    "nb": {
        "doctor": "Lege",
        "nurse": "Sykepleier",
        "pharmacist": "Farmasøyt",
        "continue": "Fortsett",
        "change": "Endre",
        "stop": "Seponer",
        "title": "Legemiddelgjennomgang",
        "list_version": "listeversjon",
        "signed": "signert",
        "by": "av",
        "renal": "Nyrefunksjon",
        "not_recorded": "ikke registrert",
        "acb": "ACB-skår",
        "psychotropics": "psykofarmaka i fast bruk",
        "antipsychotics": "antipsykotika",
        "fall_risk": "fallrisikolegemidler",
        "participants": "Deltakere",
        "list": "Legemiddelliste",
        "drug": "Legemiddel",
        "dosage": "Dosering",
        "start": "Start",
        "findings": "Funn og beslutninger",
        "criterion": "Kriterium",
        "drugs": "Legemidler",
        "finding": "Funn",
        "decision": "Beslutning",
        "source": "Kilde",
        "unverified": " (kilde ikke verifisert)",
        "not_assessed": "Ikke vurdert",
        "missing": "mangler",
        "none": "ingen",
        "since": "Endringer siden forrige gjennomgang",
        "added": "Nye legemidler",
        "removed": "Seponert",
        "changed": "Endret dosering",
        "new": "Nye funn",
        "resolved": "Løste funn",
        "acb_before": "ACB-skår før",
        "now": "nå",
        "note": "Merknad",
        "disclaimer": "Kriteriene er beslutningsstøtte, ikke klinisk sannhet: de er ikke "
        "kvalitetssikret av klinisk farmasøyt (reviewed_by tomt).",
    },
    "en": {
        "doctor": "Doctor",
        "nurse": "Nurse",
        "pharmacist": "Pharmacist",
        "continue": "Continue",
        "change": "Change",
        "stop": "Stop",
        "title": "Medication review",
        "list_version": "list version",
        "signed": "signed",
        "by": "by",
        "renal": "Kidney function",
        "not_recorded": "not recorded",
        "acb": "ACB score",
        "psychotropics": "psychotropics in regular use",
        "antipsychotics": "antipsychotics",
        "fall_risk": "fall-risk drugs",
        "participants": "Participants",
        "list": "Medication list",
        "drug": "Medicine",
        "dosage": "Dosage",
        "start": "Start",
        "findings": "Findings and decisions",
        "criterion": "Criterion",
        "drugs": "Medicines",
        "finding": "Finding",
        "decision": "Decision",
        "source": "Source",
        "unverified": " (source not verified)",
        "not_assessed": "Not assessed",
        "missing": "missing",
        "none": "none",
        "since": "Changes since the previous review",
        "added": "New medicines",
        "removed": "Stopped",
        "changed": "Dosage changed",
        "new": "New findings",
        "resolved": "Resolved findings",
        "acb_before": "ACB score before",
        "now": "now",
        "note": "Note",
        "disclaimer": "The criteria are decision support, not clinical truth: no clinical "
        "pharmacist has reviewed them yet (reviewed_by empty).",
    },
}

_CSS = """
@page { size: A4; margin: 18mm 16mm; @bottom-right { content: counter(page) " / " counter(pages);
  font-size: 8pt; } }
body { font-family: sans-serif; font-size: 9.5pt; color: #111; }
h1 { font-size: 15pt; margin: 0 0 4pt; } h2 { font-size: 11.5pt; margin: 12pt 0 4pt; }
table { border-collapse: collapse; width: 100%; } th, td { border: 0.5pt solid #888;
  padding: 2pt 4pt; vertical-align: top; text-align: left; } th { background: #eee; }
.muted { color: #555; font-size: 8pt; } td.code { white-space: nowrap; }
"""


class PdfUnavailable(DomainError):
    """The PDF renderer (WeasyPrint and its Pango libraries) is not installed here."""

    code = "pdf-unavailable"


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def review_html(review: MedicationReview, patient_name: str, lang: str = "nb") -> str:
    """The review as an HTML document in ``lang`` (``nb`` or ``en``): headings, and each
    criterion's summary from the criteria files; details and reasons as the review recorded."""
    t = TEXTS.get(lang, TEXTS["nb"])
    criteria = shipped_review_criteria()

    def summary(criterion: str, recorded: str) -> str:
        return criteria.summary_in(criterion, "nb" if t is TEXTS["nb"] else "en") or recorded

    assessment = review.assessment
    names = {str(e.entry_id): e.name for e in assessment.entries}
    decided = {d.finding: d for d in review.decisions}
    rows = []
    for finding in assessment.findings:
        decision = decided.get(finding.key)
        action = "" if decision is None else t[decision.action]
        reason = "" if decision is None else (decision.reason or "")
        verified = "" if finding.source.verified else t["unverified"]
        rows.append(
            "<tr>"
            f"<td class='code'>{_e(finding.criterion)}</td>"
            f"<td>{_e(', '.join(names.get(m, m) for m in finding.medications))}</td>"
            f"<td>{_e(summary(finding.criterion, finding.summary))}"
            f"<div class='muted'>{_e(finding.detail)}</div></td>"
            f"<td>{_e(action)}<div class='muted'>{_e(reason)}</div></td>"
            f"<td class='muted'>{_e(finding.source.citation)}{_e(verified)}</td>"
            "</tr>"
        )
    entries = "".join(
        f"<tr><td>{_e(e.name)}</td><td>{_e(e.atc)}</td><td>{_e(e.dosage or e.use)}</td>"
        f"<td>{_e(e.start.isoformat())}</td></tr>"
        for e in assessment.entries
    )
    participants = "".join(
        f"<li>{_e(t[p.role])}: {_e(p.name)}"
        + (f" (HPR {_e(p.hpr_number)})" if p.hpr_number else "")
        + "</li>"
        for p in review.participants
    )
    missing = "".join(
        f"<li>{_e(n.criterion)}: {_e(summary(n.criterion, n.summary))} — {t['missing']}: "
        f"{_e('; '.join(n.missing))}</li>"
        for n in assessment.not_assessed
    )
    since = ""
    if review.since_last is not None:
        s = review.since_last

        def listed(items: tuple[str, ...]) -> str:
            return _e(", ".join(items) or t["none"])

        since = (
            f"<h2>{t['since']} ({_e(local_date(s.previous_signed_at).isoformat())})</h2><ul>"
            f"<li>{t['added']}: {listed(s.entries_added)}</li>"
            f"<li>{t['removed']}: {listed(s.entries_removed)}</li>"
            f"<li>{t['changed']}: {listed(s.entries_changed)}</li>"
            f"<li>{t['new']}: {listed(s.findings_new)}</li>"
            f"<li>{t['resolved']}: {listed(s.findings_resolved)}</li>"
            f"<li>{t['acb_before']}: {s.acb_before}, {t['now']}: {assessment.acb.score}</li></ul>"
        )
    signer = review.signed_by.personnel
    signed_at = review.signed_at.astimezone(OSLO).strftime("%Y-%m-%d %H:%M")  # Oslo time
    html_lang = "nb" if t is TEXTS["nb"] else "en"
    return (
        f"<!DOCTYPE html><html lang='{html_lang}'><head><meta charset='utf-8'>"
        f"<title>{t['title']} {_e(patient_name)}</title><style>{_CSS}</style></head>"
        "<body>"
        f"<h1>{t['title']}</h1><p>{_e(patient_name)} · {t['list_version']} "
        f"{assessment.list_version} · {t['signed']} {_e(signed_at)} "
        f"{t['by']} {_e(signer.name)} (HPR {_e(signer.hpr_number)})</p>"
        f"<p>{t['renal']}: {_e(assessment.renal or t['not_recorded'])} · "
        f"{t['acb']}: {assessment.acb.score} · {t['psychotropics']}: "
        f"{len(assessment.indicators.psychotropics)} · {t['antipsychotics']}: "
        f"{len(assessment.indicators.antipsychotics)} · {t['fall_risk']}: "
        f"{len(assessment.indicators.fall_risk)}</p>"
        f"<h2>{t['participants']}</h2><ul>{participants}</ul>"
        f"<h2>{t['list']}</h2><table><tr><th>{t['drug']}</th><th>ATC</th>"
        f"<th>{t['dosage']}</th><th>{t['start']}</th></tr>{entries}</table>"
        f"<h2>{t['findings']}</h2><table><tr><th>{t['criterion']}</th><th>{t['drugs']}</th>"
        f"<th>{t['finding']}</th><th>{t['decision']}</th><th>{t['source']}</th></tr>"
        f"{''.join(rows)}</table>"
        f"<h2>{t['not_assessed']}</h2><ul>{missing or '<li>' + t['none'] + '</li>'}</ul>{since}"
        + (f"<h2>{t['note']}</h2><p>{_e(review.note)}</p>" if review.note else "")
        + f"<p class='muted'>{t['disclaimer']}</p></body></html>"
    )


def review_pdf(review: MedicationReview, patient_name: str, lang: str = "nb") -> bytes:
    """The review rendered as PDF in ``lang``; ``PdfUnavailable`` when WeasyPrint cannot load."""
    try:
        import weasyprint
    except (ImportError, OSError) as missing:
        raise PdfUnavailable(f"the PDF renderer is not available here: {missing}") from None
    return bytes(weasyprint.HTML(string=review_html(review, patient_name, lang)).write_pdf())
