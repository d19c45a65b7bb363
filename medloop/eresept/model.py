"""The message as typed, frozen values (pydantic).  No business rules: what the message
says, as it says it.  Nothing is dropped: elements the models do not map are kept as
:class:`Unmapped` (their path and original XML) so they can be shown."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Coded(Frozen):
    """A KITH coded value (CS/CV): ``V`` the code, ``DN`` its display name, ``S`` the code
    system OID, ``OT`` original text."""

    v: str | None = None
    dn: str | None = None
    s: str | None = None
    ot: str | None = None


class Unmapped(Frozen):
    """An element the typed values do not map, kept verbatim."""

    path: str
    line: int | None
    xml: str


class Ident(Frozen):
    id: str
    type: Coded

    @property
    def type_code(self) -> str | None:
        return self.type.v


def _first(idents: tuple[Ident, ...], *codes: str) -> str | None:
    for ident in idents:
        if ident.type.v in codes:
            return ident.id
    return None


class HealthcareProfessional(Frozen):
    type: Coded | None = None
    family_name: str | None = None
    middle_name: str | None = None
    given_name: str | None = None
    idents: tuple[Ident, ...] = ()

    @property
    def hpr(self) -> str | None:
        return _first(self.idents, "HPR")


class Organisation(Frozen):
    name: str | None = None
    idents: tuple[Ident, ...] = ()
    healthcare_professional: HealthcareProfessional | None = None
    organisation: Organisation | None = None  # a unit within this organisation

    @property
    def her_id(self) -> str | None:
        return _first(self.idents, "HER")

    @property
    def org_number(self) -> str | None:
        return _first(self.idents, "ENH")


class Patient(Frozen):
    family_name: str | None = None
    middle_name: str | None = None
    given_name: str | None = None
    date_of_birth: str | None = None
    sex: Coded | None = None
    idents: tuple[Ident, ...] = ()

    @property
    def national_id(self) -> str | None:
        """The fødselsnummer (FNR) or D-number (DNR)."""
        return _first(self.idents, "FNR", "DNR")

    @property
    def national_id_type(self) -> str | None:
        for ident in self.idents:
            if ident.type.v in ("FNR", "DNR"):
                return ident.type.v
        return None


class ConversationRef(Frozen):
    ref_to_parent: str
    ref_to_conversation: str


class MsgInfo(Frozen):
    type: str
    type_name: str | None
    mig_version: str
    gen_date: str
    msg_id: str
    conversation_ref: ConversationRef | None = None
    sender: Organisation
    receiver: Organisation
    patient: Patient | None = None


SignatureStatus = Literal["verified", "invalid", "present, not verified (no trust store)"]


class SignatureReport(Frozen):
    """One XML signature found in the message: where, and what became of it."""

    where: str
    line: int | None
    status: SignatureStatus
    detail: str
    signer: str | None = None  # the signing certificate's subject, when there is one


class Document(Frozen):
    """One document in the message: an envelope ``Content`` child or a base64-embedded one.

    ``where`` is its path in the message; ``line`` the line of the element holding it
    (for an embedded document, in the document that embeds it); ``depth`` 0 for a document
    in the envelope, 1 for one embedded in it, and so on."""

    where: str
    namespace: str
    root: str
    type: str
    line: int | None
    depth: int
    embedded: bool
    validation: str  # "valid", "N schema violation(s)" or "not validated: <why>"
    sha256: str | None = None  # of the decoded bytes, for an embedded document
