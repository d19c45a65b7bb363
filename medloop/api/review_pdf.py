"""A signed medication review as a printable PDF for the resident's record (WeasyPrint renders
the HTML built here; nothing is decided here, the review is shown as it was signed)."""

from __future__ import annotations

from html import escape

from medloop.domain.errors import DomainError
from medloop.domain.review import MedicationReview

ROLE_NAMES = {"doctor": "Lege", "nurse": "Sykepleier", "pharmacist": "Farmasøyt"}
ACTION_NAMES = {"continue": "Fortsett", "change": "Endre", "stop": "Seponer"}

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


def review_html(review: MedicationReview, patient_name: str) -> str:
    """The review as an HTML document (Norwegian headings, the review's own texts)."""
    assessment = review.assessment
    names = {str(e.entry_id): e.name for e in assessment.entries}
    decided = {d.finding: d for d in review.decisions}
    rows = []
    for finding in assessment.findings:
        decision = decided.get(finding.key)
        action = "" if decision is None else ACTION_NAMES[decision.action]
        reason = "" if decision is None else (decision.reason or "")
        verified = "" if finding.source.verified else " (kilde ikke verifisert)"
        rows.append(
            "<tr>"
            f"<td class='code'>{_e(finding.criterion)}</td>"
            f"<td>{_e(', '.join(names.get(m, m) for m in finding.medications))}</td>"
            f"<td>{_e(finding.summary)}<div class='muted'>{_e(finding.detail)}</div></td>"
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
        f"<li>{_e(ROLE_NAMES[p.role])}: {_e(p.name)}"
        + (f" (HPR {_e(p.hpr_number)})" if p.hpr_number else "")
        + "</li>"
        for p in review.participants
    )
    missing = "".join(
        f"<li>{_e(n.criterion)}: {_e(n.summary)} — mangler: {_e('; '.join(n.missing))}</li>"
        for n in assessment.not_assessed
    )
    since = ""
    if review.since_last is not None:
        s = review.since_last
        since = (
            f"<h2>Endringer siden forrige gjennomgang "
            f"({_e(s.previous_signed_at.date().isoformat())})</h2><ul>"
            f"<li>Nye legemidler: {_e(', '.join(s.entries_added) or 'ingen')}</li>"
            f"<li>Seponert: {_e(', '.join(s.entries_removed) or 'ingen')}</li>"
            f"<li>Endret dosering: {_e(', '.join(s.entries_changed) or 'ingen')}</li>"
            f"<li>Nye funn: {_e(', '.join(s.findings_new) or 'ingen')}</li>"
            f"<li>Løste funn: {_e(', '.join(s.findings_resolved) or 'ingen')}</li>"
            f"<li>ACB-skår før: {s.acb_before}, nå: {assessment.acb.score}</li></ul>"
        )
    signer = review.signed_by.personnel
    return (
        "<!DOCTYPE html><html lang='nb'><head><meta charset='utf-8'>"
        f"<title>Legemiddelgjennomgang {_e(patient_name)}</title><style>{_CSS}</style></head>"
        "<body>"
        f"<h1>Legemiddelgjennomgang</h1><p>{_e(patient_name)} · listeversjon "
        f"{assessment.list_version} · signert {_e(review.signed_at.isoformat())} av "
        f"{_e(signer.name)} (HPR {_e(signer.hpr_number)})</p>"
        f"<p>Nyrefunksjon: {_e(assessment.renal or 'ikke registrert')} · "
        f"ACB-skår: {assessment.acb.score} · psykofarmaka i fast bruk: "
        f"{len(assessment.indicators.psychotropics)} · antipsykotika: "
        f"{len(assessment.indicators.antipsychotics)} · fallrisikolegemidler: "
        f"{len(assessment.indicators.fall_risk)}</p>"
        f"<h2>Deltakere</h2><ul>{participants}</ul>"
        "<h2>Legemiddelliste</h2><table><tr><th>Legemiddel</th><th>ATC</th>"
        f"<th>Dosering</th><th>Start</th></tr>{entries}</table>"
        "<h2>Funn og beslutninger</h2><table><tr><th>Kriterium</th><th>Legemidler</th>"
        f"<th>Funn</th><th>Beslutning</th><th>Kilde</th></tr>{''.join(rows)}</table>"
        f"<h2>Ikke vurdert</h2><ul>{missing or '<li>ingen</li>'}</ul>{since}"
        + (f"<h2>Merknad</h2><p>{_e(review.note)}</p>" if review.note else "")
        + "<p class='muted'>Kriteriene er beslutningsstøtte, ikke klinisk sannhet: de er ikke "
        "kvalitetssikret av klinisk farmasøyt (reviewed_by tomt).</p></body></html>"
    )


def review_pdf(review: MedicationReview, patient_name: str) -> bytes:
    """The review rendered as PDF; ``PdfUnavailable`` when WeasyPrint cannot load."""
    try:
        import weasyprint
    except (ImportError, OSError) as missing:
        raise PdfUnavailable(f"the PDF renderer is not available here: {missing}") from None
    return bytes(weasyprint.HTML(string=review_html(review, patient_name)).write_pdf())
