"""The documents the official examples carry, as typed values: M25.x (``LegemidlerIBruk``,
the list of medicines in use, with each entry's embedded M1) and M1 (``Resept`` and the
``ReseptDokLegemiddel`` it and M25.x entries carry).

Mapping is by local name (the standards mix the m1, forskrivning, felleskomponent1 and kith
namespaces inside one document).  Every element a mapper does not read is kept, with its path
and original XML, in the ``unmapped`` of the value it sits in: nothing in a message is dropped
silently, and a later reader can show it.
"""

from __future__ import annotations

from lxml import etree

from medloop.eresept.model import Coded, Frozen, HealthcareProfessional, Ident, Unmapped


class Quantity(Frozen):
    """A KITH PQ: value ``V`` and unit ``U``, as written."""

    v: str | None = None
    u: str | None = None


class DoseAtTime(Frozen):
    """``DoseFastTidspunkt``: a regular dose."""

    amount: Quantity | None = None
    interval: Quantity | None = None
    clock_time: str | None = None
    time_of_day: Coded | None = None
    exact: bool | None = None
    unmapped: tuple[Unmapped, ...] = ()


class DoseAsNeeded(Frozen):
    """``DoseEtterBehov``: a dose as needed with its maxima."""

    amount: Quantity | None = None
    interval: Quantity | None = None
    max_per_day: Quantity | None = None
    max_per_period: Quantity | None = None
    period: Quantity | None = None
    min_interval: Quantity | None = None
    unmapped: tuple[Unmapped, ...] = ()


class Dosage(Frozen):
    """``Dosering``: one structured dosage period, as given."""

    start: str | None = None
    end: str | None = None
    fixed: tuple[DoseAtTime, ...] = ()
    as_needed: tuple[DoseAsNeeded, ...] = ()
    unmapped: tuple[Unmapped, ...] = ()


class DrugReference(Frozen):
    """The drug of a prescription: which FEST element it names (``kind``:
    ``Legemiddelpakning``, ``LegemiddelMerkevare``, ``LegemiddelVirkestoff``,
    ``Legemiddeldose`` or ``Legemiddelblanding``) and the references it carries."""

    kind: str
    fest_id: str | None = None
    varenr: str | None = None
    atc: Coded | None = None
    name_form_strength: str | None = None
    trade_name: str | None = None
    prescription_group: Coded | None = None
    dosage_form: Coded | None = None
    package_size: str | None = None
    package_unit: Coded | None = None
    unmapped: tuple[Unmapped, ...] = ()


class Forskrivning(Frozen):
    """The prescribing part: indication, dosage text and structure, and the drug."""

    use_area: str | None = None  # Bruksomrade
    dosage_text: str | None = None  # DosVeiledEnkel, verbatim
    no_combination: bool | None = None
    use: Coded | None = None  # Bruk: 1 fast, 2 kur, 3 ved behov
    short_dose: Coded | None = None  # Kortdose
    dosages: tuple[Dosage, ...] = ()
    drug: DrugReference | None = None
    unmapped: tuple[Unmapped, ...] = ()


class ReseptDokLegemiddel(Frozen):
    """The medicinal-product prescription document (in an M1, embedded in M25.x entries)."""

    product_group: Coded | None = None  # Varegruppekode
    quantity: str | None = None  # Antall, as written
    reimbursement_basis: Coded | None = None  # RefHjemmel
    reimbursement_code: Coded | None = None  # RefKode
    repeats: int | None = None  # Reiterasjon
    substitution_reserved: Coded | None = None  # BytteresRekvirent
    forskrivning: Forskrivning | None = None
    unmapped: tuple[Unmapped, ...] = ()


class Resept(Frozen):
    """An M1 prescription.  The prescriber is the envelope's sender professional."""

    issued: str | None = None  # Forskrivningsdato
    expires: str | None = None  # Utloper
    free_card: bool | None = None  # Frikort
    document: ReseptDokLegemiddel | None = None
    fest_updated: str | None = None  # OppdatertFest
    multidose_prescription: bool | None = None  # LastResept
    prescriber: HealthcareProfessional | None = None
    unmapped: tuple[Unmapped, ...] = ()


class Person(Frozen):
    hpr: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    specialty: Coded | None = None
    unmapped: tuple[Unmapped, ...] = ()


class Role(Frozen):
    """``Rolle``: L (LIB-responsible doctor), F (GP), R (prescriber), ..."""

    role: Coded | None = None
    person: Person | None = None
    organisation: Unmapped | None = None
    unmapped: tuple[Unmapped, ...] = ()


class Seponering(Frozen):
    time: str | None = None
    reason: Coded | None = None
    note: str | None = None


class Question(Frozen):
    """``Sporsmal`` (M25.2): a multidose pharmacy's question about an entry."""

    code: Coded | None = None
    note: str | None = None
    time: str | None = None
    asked_by: str | None = None
    unmapped: tuple[Unmapped, ...] = ()


class PackedDispensing(Frozen):
    """M25.3 ``SisteUtlevering``: what the multidose pharmacy last packed and handed out for
    an entry: first and last dose date, repacking reason (``Ompakkingsgrunn``), the M10 it
    reported (``RefM10``), and the dispensed package from the embedded ``UtleveringB64``."""

    first_dose: str | None = None  # DatoForsteDose
    last_dose: str | None = None  # DatoSisteDose
    repacking_reason: Coded | None = None  # Ompakkingsgrunn
    ref_m10: str | None = None  # RefM10
    picture: str | None = None  # Bilderef
    dispensed: ReseptDokLegemiddel | None = None  # UtleveringB64/Utlevering/ReseptDokLegemiddel
    dispensed_on: str | None = None  # UtleveringB64/Utlevering/Utleveringsdato
    unmapped: tuple[Unmapped, ...] = ()


class PackingInfo(Frozen):
    """M25.3 ``Pakkeinfo``: the order deadline and the first and last dosing day packed."""

    order_deadline: str | None = None  # Bestillingsfrist
    first_day: str | None = None  # ForsteDoseringsdato
    last_day: str | None = None  # SisteDoseringsdato
    unmapped: tuple[Unmapped, ...] = ()


class LibEntry(Frozen):
    """``EnkeltoppforingLIB``: one entry of the list, with its embedded prescription."""

    id: str | None = None
    type: Coded | None = None
    prescription_id: str | None = None  # ReseptId
    prescription_expires: str | None = None  # UtlopsdatoResept
    last_changed: str | None = None  # SistEndret
    start_date: str | None = None  # DatoOppstart
    medically_changed: bool | None = None  # MedEndring
    roles: tuple[Role, ...] = ()
    prescription: ReseptDokLegemiddel | None = None  # decoded from ReseptDokLegemiddelB64
    prescription_where: str | None = None
    discontinued: Seponering | None = None  # Seponering
    questions: tuple[Question, ...] = ()
    packed: tuple[PackedDispensing, ...] = ()  # M25.3 SisteUtlevering
    unmapped: tuple[Unmapped, ...] = ()

    @property
    def drug(self) -> DrugReference | None:
        if self.prescription and self.prescription.forskrivning:
            return self.prescription.forskrivning.drug
        return None


class LegemidlerIBruk(Frozen):
    """An M25.1 (or M25.2 / M25.3) list of medicines in use."""

    type: str
    roles: tuple[Role, ...] = ()
    entries: tuple[LibEntry, ...] = ()
    note: str | None = None
    locum: Coded | None = None  # Vikar
    packing: PackingInfo | None = None  # M25.3 Pakkeinfo
    unmapped: tuple[Unmapped, ...] = ()


# --- mapping -------------------------------------------------------------------------------


def local(element) -> str:
    tag = element.tag
    return tag[tag.find("}") + 1 :]


class _Reader:
    """Reads an element's children by local name and keeps the ones it did not read.

    Reading a name reads every child of that name, so what was read is kept as the set of
    names read (``rest`` is the children whose name is not in it)."""

    def __init__(self, element: etree._Element, path: str):
        self.element = element
        self.path = path
        self.used: set[str] = set()
        self.children = list(element.iterchildren(etree.Element))
        self.by_name: dict[str, list[etree._Element]] = {}
        for child in self.children:
            self.by_name.setdefault(local(child), []).append(child)

    def path_of(self, child) -> str:
        name = local(child)
        same = self.by_name.get(name, [])
        return f"{self.path}/{name}" + (f"[{same.index(child) + 1}]" if len(same) > 1 else "")

    def all(self, name: str) -> list[etree._Element]:
        self.used.add(name)
        return self.by_name.get(name, [])

    def one(self, name: str) -> etree._Element | None:
        found = self.all(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        found = self.one(name)
        return found.text if found is not None else None

    def value(self, name: str) -> str | None:
        """The ``V`` attribute (KITH TS and the like)."""
        found = self.one(name)
        return found.get("V") if found is not None else None

    def boolean(self, name: str) -> bool | None:
        raw = self.text(name)
        return None if raw is None else raw.strip() in ("true", "1")

    def integer(self, name: str) -> int | None:
        raw = self.text(name)
        return None if raw is None else int(raw.strip())

    def coded(self, name: str) -> Coded | None:
        found = self.one(name)
        return coded(found) if found is not None else None

    def quantity(self, name: str) -> Quantity | None:
        found = self.one(name)
        return Quantity(v=found.get("V"), u=found.get("U")) if found is not None else None

    def nested(self, name: str) -> list[_Reader]:
        """A reader of each child ``name`` (read: none is kept as unmapped here)."""
        return [_Reader(child, self.path_of(child)) for child in self.all(name)]

    def nested_one(self, name: str) -> _Reader | None:
        found = self.nested(name)
        return found[0] if found else None

    def embedded(
        self, name: str, root: str, documents: dict[str, etree._Element]
    ) -> tuple[etree._Element | None, str | None, tuple[Unmapped, ...]]:
        """The document the base64 child ``name`` carries (``documents``: the decoded roots by
        the path of their base64 element): its root when it is a ``root`` document, the path of
        the base64 element when it was decoded, and the element kept whole as it came when it
        is no ``root`` document (one we do not map)."""
        b64 = self.one(name)
        if b64 is None:
            return None, None, ()
        where = self.path_of(b64)
        found = documents.get(where)
        if found is not None and local(found) == root:
            return found, where, ()
        return None, where if found is not None else None, (unmapped(b64, where),)

    def rest(self) -> tuple[Unmapped, ...]:
        if self.used.issuperset(self.by_name):
            return ()
        return tuple(
            unmapped(child, self.path_of(child))
            for child in self.children
            if local(child) not in self.used
        )


def coded(element) -> Coded:
    return Coded(v=element.get("V"), dn=element.get("DN"), s=element.get("S"), ot=element.get("OT"))


def unmapped(element, path: str) -> Unmapped:
    return Unmapped(
        path=path,
        line=element.sourceline,
        xml=etree.tostring(element, encoding="unicode", with_tail=False),
    )


def ident(element) -> Ident:
    r = _Reader(element, "")
    type_el = r.one("TypeId")
    return Ident(
        id=(r.text("Id") or "").strip(), type=coded(type_el) if type_el is not None else Coded()
    )


_DRUG_KINDS = (
    "Legemiddelpakning",
    "LegemiddelMerkevare",
    "LegemiddelVirkestoff",
    "Legemiddeldose",
    "Legemiddelblanding",
)


def read_drug(element, path: str) -> DrugReference:
    r = _Reader(element, path)
    package_size = package_unit = trade_name = None
    extra: list[Unmapped] = []
    infos = r.all("PakningsinfoResept")
    if infos:
        info = _Reader(infos[0], r.path_of(infos[0]))
        trade_name = info.text("Varenavn")
        package_size = info.text("Pakningsstr")
        package_unit = info.coded("EnhetPakning")
        extra.extend(info.rest())
        extra.extend(unmapped(more, r.path_of(more)) for more in infos[1:])
    merkevare_name = r.text("Varenavn")
    return DrugReference(
        kind=local(element),
        fest_id=r.text("Id"),
        varenr=r.text("Varenr"),
        atc=r.coded("Atc"),
        name_form_strength=r.text("NavnFormStyrke"),
        trade_name=trade_name or merkevare_name,
        prescription_group=r.coded("Reseptgruppe"),
        dosage_form=r.coded("LegemiddelformKort"),
        package_size=package_size,
        package_unit=package_unit,
        unmapped=tuple(extra) + r.rest(),
    )


def read_dosage(element, path: str) -> Dosage:
    r = _Reader(element, path)
    fixed = []
    for dose in r.all("DoseFastTidspunkt"):
        d = _Reader(dose, r.path_of(dose))
        fixed.append(
            DoseAtTime(
                amount=d.quantity("Mengde"),
                interval=d.quantity("Intervall"),
                clock_time=d.text("Klokkeslett"),
                time_of_day=d.coded("Tidsomrade"),
                exact=d.boolean("GisEksakt"),
                unmapped=d.rest(),
            )
        )
    as_needed = []
    for dose in r.all("DoseEtterBehov"):
        d = _Reader(dose, r.path_of(dose))
        as_needed.append(
            DoseAsNeeded(
                amount=d.quantity("Mengde"),
                interval=d.quantity("Intervall"),
                max_per_day=d.quantity("DoseDognMaks"),
                max_per_period=d.quantity("DoseTidsromMaks"),
                period=d.quantity("Tidsrom"),
                min_interval=d.quantity("DoseIntervallMin"),
                unmapped=d.rest(),
            )
        )
    return Dosage(
        start=r.value("Starttidspunkt"),
        end=r.value("Sluttidspunkt"),
        fixed=tuple(fixed),
        as_needed=tuple(as_needed),
        unmapped=r.rest(),
    )


def read_forskrivning(element, path: str) -> Forskrivning:
    r = _Reader(element, path)
    drug = None
    for kind in _DRUG_KINDS:
        found = r.one(kind)
        if found is not None:
            drug = read_drug(found, r.path_of(found))
            break
    return Forskrivning(
        use_area=r.text("Bruksomrade"),
        dosage_text=r.text("DosVeiledEnkel"),
        no_combination=r.boolean("IngenKombinasjon"),
        use=r.coded("Bruk"),
        short_dose=r.coded("Kortdose"),
        dosages=tuple(read_dosage(d, r.path_of(d)) for d in r.all("Dosering")),
        drug=drug,
        unmapped=r.rest(),
    )


def read_resept_dok(element, path: str) -> ReseptDokLegemiddel:
    r = _Reader(element, path)
    fs = r.one("Forskrivning")
    return ReseptDokLegemiddel(
        product_group=r.coded("Varegruppekode"),
        quantity=r.text("Antall"),
        reimbursement_basis=r.coded("RefHjemmel"),
        reimbursement_code=r.coded("RefKode"),
        repeats=r.integer("Reiterasjon"),
        substitution_reserved=r.coded("BytteresRekvirent"),
        forskrivning=read_forskrivning(fs, r.path_of(fs)) if fs is not None else None,
        unmapped=r.rest(),
    )


def read_resept(element, path: str, prescriber: HealthcareProfessional | None) -> Resept:
    r = _Reader(element, path)
    dok = r.one("ReseptDokLegemiddel")
    return Resept(
        issued=r.text("Forskrivningsdato"),
        expires=r.text("Utloper"),
        free_card=r.boolean("Frikort"),
        document=read_resept_dok(dok, r.path_of(dok)) if dok is not None else None,
        fest_updated=r.text("OppdatertFest"),
        multidose_prescription=r.boolean("LastResept"),
        prescriber=prescriber,
        unmapped=r.rest(),
    )


def read_role(element, path: str) -> Role:
    r = _Reader(element, path)
    person = None
    found = r.one("Helseperson")
    if found is not None:
        p = _Reader(found, r.path_of(found))
        hpr = p.one("HprId")
        person = Person(
            hpr=ident(hpr).id if hpr is not None else None,
            given_name=p.text("Fornavn"),
            family_name=p.text("Etternavn"),
            specialty=p.coded("Spesialitet"),
            unmapped=p.rest(),
        )
    org = r.one("Organisasjon")
    return Role(
        role=r.coded("Rolle"),
        person=person,
        organisation=unmapped(org, r.path_of(org)) if org is not None else None,
        unmapped=r.rest(),
    )


def read_entry(element, path: str, embedded: dict[str, etree._Element]) -> LibEntry:
    """``embedded`` maps the path of each base64 element to its decoded document's root."""
    r = _Reader(element, path)
    prescription = None
    root, where, kept = r.embedded("ReseptDokLegemiddelB64", "ReseptDokLegemiddel", embedded)
    if root is not None and where is not None:
        prescription = read_resept_dok(root, where + "/ReseptDokLegemiddel")
    discontinued = None
    if (s := r.nested_one("Seponering")) is not None:
        discontinued = Seponering(
            time=s.text("Tidspunkt"), reason=s.coded("Arsak"), note=s.text("Merknad")
        )
    questions = tuple(
        Question(
            code=q.coded("Kode"),
            note=q.text("Merknad"),
            time=q.text("Tidspunkt"),
            asked_by=q.text("Stiller"),
            unmapped=q.rest(),
        )
        for q in r.nested("Sporsmal")
    )
    return LibEntry(
        id=r.text("Id"),
        type=r.coded("Type"),
        prescription_id=r.text("ReseptId"),
        prescription_expires=r.text("UtlopsdatoResept"),
        last_changed=r.text("SistEndret"),
        start_date=r.text("DatoOppstart"),
        medically_changed=r.boolean("MedEndring"),
        roles=tuple(read_role(x, r.path_of(x)) for x in r.all("Rolle")),
        prescription=prescription,
        prescription_where=where,
        discontinued=discontinued,
        questions=questions,
        packed=tuple(_packed(p, embedded) for p in r.nested("SisteUtlevering")),
        unmapped=r.rest() + kept,
    )


def _packed(pr: _Reader, embedded: dict[str, etree._Element]) -> PackedDispensing:
    """M25.3 ``SisteUtlevering``, with the ``Utlevering`` (the M10's dispensing document) its
    ``UtleveringB64`` carries."""
    dispensed = dispensed_on = None
    root, where, kept = pr.embedded("UtleveringB64", "Utlevering", embedded)
    if root is not None and where is not None:
        ur = _Reader(root, where + "/Utlevering")
        doc = ur.one("ReseptDokLegemiddel")
        if doc is not None:
            dispensed = read_resept_dok(doc, ur.path_of(doc))
        dispensed_on = ur.text("Utleveringsdato")
    return PackedDispensing(
        first_dose=pr.text("DatoForsteDose"),
        last_dose=pr.text("DatoSisteDose"),
        repacking_reason=pr.coded("Ompakkingsgrunn"),
        ref_m10=pr.text("RefM10"),
        picture=pr.text("Bilderef"),
        dispensed=dispensed,
        dispensed_on=dispensed_on,
        unmapped=tuple(u for u in pr.rest() if not u.path.endswith("UtleveringB64")) + kept,
    )


def read_lib(element, path: str, type_name: str, embedded) -> LegemidlerIBruk:
    r = _Reader(element, path)
    return LegemidlerIBruk(
        type=type_name,
        roles=tuple(read_role(x, r.path_of(x)) for x in r.all("Rolle")),
        entries=tuple(read_entry(x, r.path_of(x), embedded) for x in r.all("EnkeltoppforingLIB")),
        note=r.text("Merknad"),
        locum=r.coded("Vikar"),
        packing=_packing(r),
        unmapped=r.rest(),
    )


def _packing(r: _Reader) -> PackingInfo | None:
    p = r.nested_one("Pakkeinfo")
    if p is None:
        return None
    return PackingInfo(
        order_deadline=p.text("Bestillingsfrist"),
        first_day=p.text("ForsteDoseringsdato"),
        last_day=p.text("SisteDoseringsdato"),
        unmapped=p.rest(),
    )
