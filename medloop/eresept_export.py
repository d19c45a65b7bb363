"""Writing e-prescription messages (M25.1, M1, M5) from the list's values, with lxml, in the
element order of the official XSDs (every message written is validated against them in the
tests). No rules: what to write is decided by the caller (``medloop.queries``); this module
only spells it.

- **M25.1** (``ERM251``): the patient's list in a MsgHead; each entry an
  ``EnkeltoppforingLIB`` with its prescription (or, for an entry without one, what it says)
  embedded base64 as a ``ReseptDokLegemiddel`` (the M1 document) in ``ReseptDokLegemiddelB64``;
  a discontinued entry carries its ``Seponering``. The multidose doctor's answer to an
  M25.2 (``proposal_answer``) is such an M25.1, to the M25.2's sender, in its conversation
  (``ConversationRef``), with the decision in ``Merknad`` and a question's ``Svar``.
- **M1** (``ERM1``): one prescription; its MsgId is the prescription id, as the national
  prescription intermediary has it.
- **M5** (``ERM5``): the recall of one prescription.

The sender is the requesting prescriber's organisation (HER-id, or organisation number when the
id is nine digits) and HPR; the receiver the national prescription intermediary
(Reseptformidleren) unless another is given.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from lxml import etree

from interactions.dosage import Dosage, Period, Quantity, TimeUnit, Use
from interactions.drugs import ReferenceKind
from medloop.domain.codes import DiscontinuationReason, EntryStatus, RecallReason
from medloop.domain.drug_reference import CatalogueDrug, DrugReference, UnresolvedDrug
from medloop.domain.entry import ListEntry
from medloop.domain.multidose.proposals import ProposalAnswer, ProposalKind
from medloop.domain.patient import Patient
from medloop.domain.personnel import Actor
from medloop.domain.prescription import Prescription

MSGHEAD = "http://www.kith.no/xmlstds/msghead/2006-05-24"
M251 = "http://www.kith.no/xmlstds/eresept/m251/2013-10-08"
M1 = "http://www.kith.no/xmlstds/eresept/m1/2013-10-08"
M5 = "http://www.kith.no/xmlstds/eresept/m5/2013-04-16"
FS = "http://www.kith.no/xmlstds/eresept/forskrivning/2013-10-08"
FK1 = "http://www.kith.no/xmlstds/felleskomponent1"
MIG_VERSION = "v1.2 2006-05-24"

OID_ID_TYPES = "2.16.578.1.12.4.1.1.9051"
OID_PERSON_IDS = "2.16.578.1.12.4.1.1.8116"
OID_ATC = "2.16.578.1.12.4.1.1.7180"
OID_SHORT_DOSE = "2.16.578.1.12.4.1.1.7478"
OID_RECALL = "2.16.578.1.12.4.1.1.7500"


@dataclass(frozen=True)
class Party:
    """An organisation a message goes to."""

    name: str
    her_id: str | None = None
    org_number: str | None = None


RESEPTFORMIDLEREN = Party(name="Reseptformidleren", her_id="80624", org_number="915933149")

_DISCONTINUATION_NAMES = {
    DiscontinuationReason.TREATMENT_ENDED: "Behandling avsluttet",
    DiscontinuationReason.DUPLICATE_ENTRY: "Dobbeltforskrivning",
    DiscontinuationReason.INTERACTION: "Interaksjon",
    DiscontinuationReason.DRUG_REACTION: "Legemiddelreaksjon",
    DiscontinuationReason.LACK_OF_EFFECT: "Manglende effekt",
    DiscontinuationReason.PATIENT_HAS_NOT_USED: "Pasienten har ikke brukt",
    DiscontinuationReason.PATIENT_STOPPED: "Pasienten har sluttet",
    DiscontinuationReason.OTHER: "Annet",
}
_USE = {Use.REGULAR: ("1", "Fast"), Use.COURSE: ("2", "Kur"), Use.AS_NEEDED: ("3", "Ved behov")}
_TIME_UNIT = {
    TimeUnit.MINUTE: "min",
    TimeUnit.HOUR: "t",
    TimeUnit.DAY: "Døgn",
    TimeUnit.WEEK: "uke",
    TimeUnit.MONTH: "mnd",
}


def _el(parent, ns: str, name: str, text: str | None = None, **attrs: str | None):
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    for key, value in attrs.items():
        if value is not None:
            element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _number(value: float) -> str:
    return format(value, "g") if value != int(value) else str(int(value))


def _iso_time(moment: datetime) -> str:
    return moment.isoformat()


# -- the envelope --------------------------------------------------------------------------------


def _ident(parent, id_: str, code: str, name: str, oid: str) -> None:
    ident = _el(parent, MSGHEAD, "Ident")
    _el(ident, MSGHEAD, "Id", id_)
    _el(ident, MSGHEAD, "TypeId", V=code, DN=name, S=oid)


def _org_idents(parent, her_id: str | None, org_number: str | None) -> None:
    if org_number:
        _ident(parent, org_number, "ENH", "Organisasjonsnummeret i Enhetsregister", OID_ID_TYPES)
    if her_id:
        _ident(parent, her_id, "HER", "HER-id", OID_ID_TYPES)


def _sender(parent, actor: Actor) -> None:
    org = _el(_el(parent, MSGHEAD, "Sender"), MSGHEAD, "Organisation")
    _el(org, MSGHEAD, "OrganisationName", actor.organisation.name)
    org_id = actor.organisation.id
    nine_digits = org_id.isdigit() and len(org_id) == 9
    _org_idents(org, None if nine_digits else org_id, org_id if nine_digits else None)
    hcp = _el(org, MSGHEAD, "HealthcareProfessional")
    role = {"doctor": ("LE", "Lege"), "nurse": ("SP", "Sykepleier")}.get(
        actor.personnel.role.value, ("FA1", "Provisorfarmasøyt")
    )
    _el(hcp, MSGHEAD, "TypeHealthcareProfessional", V=role[0], DN=role[1])
    given, _, family = actor.personnel.name.rpartition(" ")
    _el(hcp, MSGHEAD, "FamilyName", family or actor.personnel.name)
    if given:
        _el(hcp, MSGHEAD, "GivenName", given)
    _ident(hcp, actor.personnel.hpr_number, "HPR", "HPR-nummer", OID_PERSON_IDS)


def _receiver(parent, party: Party) -> None:
    org = _el(_el(parent, MSGHEAD, "Receiver"), MSGHEAD, "Organisation")
    _el(org, MSGHEAD, "OrganisationName", party.name)
    _org_idents(org, party.her_id, party.org_number)


def _patient(parent, patient: Patient) -> None:
    element = _el(parent, MSGHEAD, "Patient")
    _el(element, MSGHEAD, "FamilyName", patient.family_name)
    _el(element, MSGHEAD, "GivenName", patient.given_name)
    _el(element, MSGHEAD, "DateOfBirth", patient.birth_date.isoformat())
    national_id = str(patient.national_id)
    is_d_number = int(national_id[0]) >= 4
    _ident(
        element,
        national_id,
        "DNR" if is_d_number else "FNR",
        "D-nummer" if is_d_number else "Fødselsnummer",
        OID_PERSON_IDS,
    )


@dataclass(frozen=True)
class Conversation:
    """``ConversationRef``: the message answered (``RefToParent``) and the conversation's
    first message (``RefToConversation``)."""

    parent: str
    conversation: str


def _envelope(
    type_code: str,
    type_name: str,
    *,
    msg_id: str,
    at: datetime,
    sender: Actor,
    receiver: Party,
    patient: Patient,
    conversation: Conversation | None = None,
):
    root = etree.Element(f"{{{MSGHEAD}}}MsgHead", nsmap={None: MSGHEAD})
    info = _el(root, MSGHEAD, "MsgInfo")
    _el(info, MSGHEAD, "Type", V=type_code, DN=type_name)
    _el(info, MSGHEAD, "MIGversion", MIG_VERSION)
    _el(info, MSGHEAD, "GenDate", _iso_time(at))
    _el(info, MSGHEAD, "MsgId", msg_id)
    if conversation is not None:
        ref = _el(info, MSGHEAD, "ConversationRef")
        _el(ref, MSGHEAD, "RefToParent", conversation.parent)
        _el(ref, MSGHEAD, "RefToConversation", conversation.conversation)
    _sender(info, sender)
    _receiver(info, receiver)
    _patient(info, patient)
    ref = _el(_el(root, MSGHEAD, "Document"), MSGHEAD, "RefDoc")
    _el(ref, MSGHEAD, "MsgType", V="XML", DN="XML-instans")
    return root, _el(ref, MSGHEAD, "Content")


def _bytes(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


# -- the prescription document -------------------------------------------------------------------


def _drug(parent, drug: DrugReference, varenrs: Mapping[str, str]) -> None:
    if isinstance(drug, CatalogueDrug):
        resolved = drug.resolved
        varenr = drug.varenr or varenrs.get(resolved.reference_id)
        kind = {
            ReferenceKind.PACKAGE: "Legemiddelpakning",
            ReferenceKind.PRODUCT: "LegemiddelMerkevare",
        }.get(resolved.reference_kind, "LegemiddelVirkestoff")
        if kind == "Legemiddelpakning" and not varenr:
            kind = "LegemiddelVirkestoff"  # resolved again by its FEST id
        element = _el(parent, FS, kind)
        if resolved.atc:
            _el(element, FS, "Atc", V=resolved.atc, S=OID_ATC, DN=resolved.atc)
        _el(element, FS, "NavnFormStyrke", resolved.name)
        group = resolved.prescription_group or "F"
        _el(element, FS, "Reseptgruppe", V=group, DN=f"Reseptgruppe {group}")
        _el(element, FS, "Id", resolved.reference_id)
        if kind == "Legemiddelpakning":
            _el(element, FS, "Varenr", varenr)
        elif kind == "LegemiddelMerkevare":
            _el(element, FS, "Varenavn", resolved.name)
        return
    if isinstance(drug, UnresolvedDrug):
        kind = "Legemiddelpakning" if drug.varenr else "LegemiddelMerkevare"
        element = _el(parent, FS, kind)
        if drug.atc:
            _el(element, FS, "Atc", V=drug.atc, S=OID_ATC, DN=drug.atc)
        _el(element, FS, "NavnFormStyrke", drug.name)
        group = drug.prescription_group or "F"
        _el(element, FS, "Reseptgruppe", V=group, DN=f"Reseptgruppe {group}")
        if drug.fest_id and _is_ncname(drug.fest_id):
            _el(element, FS, "Id", drug.fest_id)
        if drug.varenr:
            _el(element, FS, "Varenr", drug.varenr)
        else:
            _el(element, FS, "Varenavn", drug.name)
        return
    # a non-catalogue item: named as a brand outside FEST, over the counter
    element = _el(parent, FS, "LegemiddelMerkevare")
    _el(element, FS, "NavnFormStyrke", drug.name)
    _el(element, FS, "Reseptgruppe", V="F", DN="Reseptfritt")
    _el(element, FS, "Varenavn", drug.name)


def _is_ncname(value: str) -> bool:
    return bool(value) and (value[0].isalpha() or value[0] == "_") and ":" not in value


def _pq(parent, name: str, quantity: Quantity) -> None:
    _el(parent, FS, name, V=_number(quantity.value), U=quantity.unit)


def _period(parent, name: str, period: Period) -> None:
    _el(parent, FS, name, V=_number(period.value), U=_TIME_UNIT[period.unit])


def structured(dosage: Dosage | None) -> bool:
    """Whether ``dosage`` is written as a ``Dosering`` (its doses complete for the XSD: an
    as-needed dose there carries all four limits)."""
    if dosage is None or not (dosage.fixed or dosage.as_needed):
        return False
    return all(
        d.max_per_24h and d.max_per_period and d.period and d.min_interval for d in dosage.as_needed
    ) and all(not d.weekdays and d.days_on is None for d in dosage.fixed)


def _forskrivning(parent, entry: ListEntry, varenrs: Mapping[str, str]) -> None:
    fs = _el(parent, FS, "Forskrivning")
    dosage = entry.dosage
    if entry.indication:
        _el(fs, FS, "Bruksomrade", entry.indication)
    if dosage is not None and dosage.text:
        _el(fs, FS, "DosVeiledEnkel", dosage.text)
    code, name = _USE[entry.use]
    _el(fs, FS, "Bruk", V=code, DN=name)
    if dosage is not None and dosage.short_dose is not None:
        short = dosage.short_dose
        _el(fs, FS, "Kortdose", V=short.code, S=OID_SHORT_DOSE, DN=short.text, OT=short.text)
    if structured(dosage):
        assert dosage is not None
        dosering = _el(fs, FS, "Dosering")
        _el(dosering, FS, "Starttidspunkt", V=entry.start.isoformat())
        if entry.stop:
            _el(dosering, FS, "Sluttidspunkt", V=entry.stop.isoformat())
        for dose in dosage.fixed:
            element = _el(dosering, FS, "DoseFastTidspunkt")
            _pq(element, "Mengde", dose.amount)
            if dose.interval is not None:
                _period(element, "Intervall", dose.interval)
            else:
                _el(element, FS, "Intervall", V="1", U="Døgn")
            if dose.clock_time is not None:
                _el(element, FS, "Klokkeslett", dose.clock_time.isoformat())
            if dose.time_of_day is not None:
                _el(element, FS, "Tidsomrade", V=dose.time_of_day.code)
            _el(element, FS, "GisEksakt", "true" if dose.exact else "false")
        for dose in dosage.as_needed:
            element = _el(dosering, FS, "DoseEtterBehov")
            _pq(element, "Mengde", dose.amount)
            _pq(element, "DoseDognMaks", dose.max_per_24h)
            _pq(element, "DoseTidsromMaks", dose.max_per_period)
            _period(element, "Tidsrom", dose.period)
            _period(element, "DoseIntervallMin", dose.min_interval)
    _drug(fs, entry.drug, varenrs)


def prescription_document(
    entry: ListEntry, prescription: Prescription | None, varenrs: Mapping[str, str]
) -> bytes:
    """The ``ReseptDokLegemiddel`` (M1 namespace) of an entry: its prescription's terms when it
    has one, else what the entry says (quantity 1)."""
    root = etree.Element(f"{{{M1}}}ReseptDokLegemiddel", nsmap={None: M1})
    _resept_dok(root, entry, prescription, varenrs)
    return etree.tostring(root, encoding="utf-8")


def _resept_dok(
    dok, entry: ListEntry, prescription: Prescription | None, varenrs: Mapping[str, str]
) -> None:
    _el(dok, M1, "Varegruppekode", V="L", DN="Legemiddel")
    packages = None
    if prescription is not None and prescription.quantity.packages is not None:
        packages = prescription.quantity.packages
    _el(dok, M1, "Antall", _number(packages if packages is not None else 1.0))
    if prescription is not None and prescription.reimbursed:
        _el(dok, M1, "RefHjemmel", V="200", DN="§5-14 §2")
    _el(dok, M1, "Reiterasjon", str(prescription.repeats if prescription else 0))
    if prescription is not None and prescription.reserved_against_substitution:
        _el(dok, M1, "BytteresRekvirent", V="1", DN="Ja")
    if prescription is not None and prescription.quantity.amount is not None:
        amount = prescription.quantity.amount
        _el(dok, M1, "Mengde", V=_number(amount.value), U=amount.unit)
    _forskrivning(dok, entry, varenrs)


# -- M25.1 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnsweredQuestion:
    """A ``Sporsmal`` as asked (its coded question, note, time and asker's HER-id) with the
    ``Svar`` given: ``answer`` its display name, ``note`` the doctor's words."""

    code: str | None
    system: str | None
    name: str | None
    asked_note: str | None
    asked_at: str
    asked_by: str
    answer: str
    note: str | None


def m25_1(
    patient: Patient,
    entries: Sequence[ListEntry],
    prescriptions: Mapping[UUID, Prescription],
    *,
    sender: Actor,
    msg_id: str,
    at: datetime,
    receiver: Party = RESEPTFORMIDLEREN,
    varenrs: Mapping[str, str] | None = None,
    conversation: Conversation | None = None,
    note: str | None = None,
    questions: Mapping[UUID, Sequence[AnsweredQuestion]] | None = None,
) -> bytes:
    """The list as one M25.1 message (entered-in-error entries are never part of it). An
    answer carries its ``conversation``, a ``note`` (``LegemidlerIBruk/Merknad``) and the
    questions it answers on their entries (``Sporsmal`` with ``Svar``)."""
    root, content = _envelope(
        "ERM251",
        "Varer i bruk",
        msg_id=msg_id,
        at=at,
        sender=sender,
        receiver=receiver,
        patient=patient,
        conversation=conversation,
    )
    lib = etree.SubElement(content, f"{{{M251}}}LegemidlerIBruk", nsmap={None: M251})
    _role(lib, "L", "LIB-ansvarlig lege", sender)
    for entry in entries:
        if entry.status is EntryStatus.ENTERED_IN_ERROR:
            continue
        element = _entry(lib, entry, prescriptions, varenrs or {})
        for question in (questions or {}).get(entry.id, ()):
            _question(element, question)
    if note:
        _el(lib, M251, "Merknad", note)
    return _bytes(root)


_KIND_NAMES = {
    ProposalKind.NEW_ENTRY: "ny oppføring",
    ProposalKind.CHANGE_DOSAGE: "endret dosering",
    ProposalKind.DISCONTINUE: "seponering",
    ProposalKind.RENEW: "fornyelse",
    ProposalKind.QUESTION: "spørsmål",
}


def proposal_answer(
    patient: Patient,
    entries: Sequence[ListEntry],
    prescriptions: Mapping[UUID, Prescription],
    answer: ProposalAnswer,
    *,
    varenrs: Mapping[str, str] | None = None,
) -> bytes:
    """The multidose doctor's answer to a proposal of an M25.2, as the updated M25.1: from the
    doctor to the M25.2's sender, in its conversation (``RefToParent``: the M25.2), the list
    as it stands after the decision (``entries``), the decision in ``Merknad`` and, for a
    question, the question repeated on its entry with its ``Svar``."""
    origin = answer.origin
    decided = "godtatt" if answer.accepted else "avvist"
    note = (
        f"Svar på forslag fra multidoseapotek (M25.2 {origin.msg_id}, "
        f"{_KIND_NAMES[answer.kind]}): {decided}" + (f": {answer.reason}" if answer.reason else "")
    )
    questions: dict[UUID, list[AnsweredQuestion]] = {}
    asked = origin.question
    if answer.kind is ProposalKind.QUESTION and asked is not None and answer.entry_id:
        questions[answer.entry_id] = [
            AnsweredQuestion(
                code=asked.code,
                system=asked.system,
                name=asked.name,
                asked_note=asked.note,
                asked_at=asked.asked_at or _iso_time(answer.decided_at),
                asked_by=asked.asked_by or origin.sender.her_id or origin.sender.org_number or "",
                answer="Besvart" if answer.accepted else "Avvist",
                note=answer.reason,
            )
        ]
    return m25_1(
        patient,
        entries,
        prescriptions,
        sender=answer.doctor,
        msg_id=answer.msg_id,
        at=answer.decided_at,
        receiver=Party(
            name=origin.sender.name or "Multidoseapotek",
            her_id=origin.sender.her_id,
            org_number=origin.sender.org_number,
        ),
        varenrs=varenrs,
        conversation=Conversation(parent=origin.msg_id, conversation=origin.conversation),
        note=note,
        questions=questions,
    )


def _question(parent, question: AnsweredQuestion) -> None:
    element = _el(parent, M251, "Sporsmal")
    _el(element, M251, "Kode", V=question.code, S=question.system, DN=question.name)
    if question.asked_note:
        _el(element, M251, "Merknad", question.asked_note)
    _el(element, M251, "Tidspunkt", question.asked_at)
    _el(element, M251, "Stiller", question.asked_by)
    answer = _el(element, M251, "Svar")
    # The code system of Svar/Kode is not among our references: the answer is named (DN), with
    # the doctor's words in Merknad, and no code is made up.
    _el(answer, M251, "Kode", DN=question.answer)
    if question.note:
        _el(answer, M251, "Merknad", question.note)


def _role(parent, code: str, name: str, actor: Actor) -> None:
    role = _el(parent, M251, "Rolle")
    _el(role, M251, "Rolle", V=code, DN=name)
    person = _el(role, M251, "Helseperson")
    hpr = _el(person, M251, "HprId")
    _el(hpr, FK1, "Id", actor.personnel.hpr_number)
    _el(hpr, FK1, "TypeId", V="HPR", DN="HPR-nummer", S=OID_PERSON_IDS)
    given, _, family = actor.personnel.name.rpartition(" ")
    if given:
        _el(person, M251, "Fornavn", given)
    _el(person, M251, "Etternavn", family or actor.personnel.name)


def _entry(
    lib, entry: ListEntry, prescriptions: Mapping[UUID, Prescription], varenrs: Mapping[str, str]
):
    element = _el(lib, M251, "EnkeltoppforingLIB")
    _el(element, M251, "Id", str(entry.id))
    latest = next(
        (prescriptions[p] for p in reversed(entry.prescription_ids) if p in prescriptions), None
    )
    if latest is not None:
        _el(element, M251, "Type", V="E", DN="Eresept")
        _el(element, M251, "ReseptId", str(latest.id))
        _el(element, M251, "UtlopsdatoResept", latest.expires.isoformat())
    else:
        _el(element, M251, "Type", V="U", DN="Uten resept")
    _el(element, M251, "SistEndret", _iso_time(entry.changed_at))
    _el(element, M251, "DatoOppstart", entry.start.isoformat())
    if entry.prescriber is not None:
        _role(element, "R", "Rekvirent", entry.prescriber)
    _el(element, M251, "ReseptDokLegemiddelB64").text = base64.b64encode(
        prescription_document(entry, latest, varenrs)
    ).decode("ascii")
    if entry.discontinuation is not None:
        stop = entry.discontinuation
        sep = _el(element, M251, "Seponering")
        _el(sep, M251, "Tidspunkt", _iso_time(stop.at))
        _el(sep, M251, "Arsak", V=stop.reason.value, DN=_DISCONTINUATION_NAMES[stop.reason])
        if stop.note:
            _el(sep, M251, "Merknad", stop.note)
    return element


# -- M1 and M5 -----------------------------------------------------------------------------------


def m1(
    patient: Patient,
    prescription: Prescription,
    entry: ListEntry,
    *,
    sender: Actor,
    at: datetime,
    receiver: Party = RESEPTFORMIDLEREN,
    varenrs: Mapping[str, str] | None = None,
) -> bytes:
    """One prescription as an M1 (its MsgId is the prescription id)."""
    root, content = _envelope(
        "ERM1",
        "Resept",
        msg_id=str(prescription.id),
        at=at,
        sender=sender,
        receiver=receiver,
        patient=patient,
    )
    resept = etree.SubElement(content, f"{{{M1}}}Resept", nsmap={None: M1})
    _el(resept, M1, "Forskrivningsdato", prescription.issued.isoformat())
    _el(resept, M1, "Utloper", prescription.expires.isoformat())
    dok = _el(resept, M1, "ReseptDokLegemiddel")
    _resept_dok(
        dok, entry.model_copy(update={"drug": prescription.drug}), prescription, varenrs or {}
    )
    _el(resept, M1, "OppdatertFest", _iso_time(at))
    _el(resept, M1, "LastResept", "true" if entry.multidose else "false")
    return _bytes(root)


_RECALL_NAMES = {
    RecallReason.RENEWAL: "Fornyelse",
    RecallReason.DISCONTINUATION: "Seponering",
    RecallReason.RENEWAL_WITH_CHANGE: "Fornyelse med endring",
    RecallReason.OTHER: "Annet",
}


def m5(
    patient: Patient,
    prescription_id: UUID,
    *,
    reason: RecallReason,
    note: str | None,
    sender: Actor,
    msg_id: str,
    at: datetime,
    receiver: Party = RESEPTFORMIDLEREN,
) -> bytes:
    """The recall of one prescription as an M5."""
    root, content = _envelope(
        "ERM5",
        "Tilbakekalling av resept",
        msg_id=msg_id,
        at=at,
        sender=sender,
        receiver=receiver,
        patient=patient,
    )
    recall = etree.SubElement(content, f"{{{M5}}}Tilbakekalling", nsmap={None: M5})
    _el(recall, M5, "ReseptId", str(prescription_id))
    if note:
        _el(recall, M5, "Merknad", note)
    _el(recall, M5, "Arsak", V=reason.value, DN=_RECALL_NAMES[reason], S=OID_RECALL)
    return _bytes(root)
