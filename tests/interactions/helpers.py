"""A small hand-built catalogue with real ATC codes, and helpers to make list entries from it.

Ids are readable stand-ins for FEST ids. The interactions are shaped like FEST records but their
texts are ours.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import TypeVar

from pydantic import BaseModel

from interactions import Alert, Dosage, Knowledge, Medication
from interactions.catalogue import (
    CatalogueInfo,
    CatalogueSnapshot,
    DoseUnit,
    GenericGroup,
    Interaction,
    InteractionGroup,
    InteractionMember,
    NotAssessed,
    Notice,
    Package,
    Product,
    Strength,
    Substance,
    SubstitutionGroup,
)
from interactions.dosage import AsNeededDose, FixedDose, Period, Quantity, TimeOfDay, Use, Weekday

INFO = CatalogueInfo(version=7, hentet_dato="2026-03-01T03:00:00")

ORAL, SUBCUTANEOUS = "53", "62"

# -- substances ------------------------------------------------------------------------------

SUBSTANCES = (
    Substance("ID_WARFARIN", "Warfarin", "Warfarin", ("ID_WARFARIN_NA",)),
    Substance("ID_WARFARIN_NA", "Warfarinnatrium", "Warfarin sodium", ()),
    Substance("ID_IBUPROFEN", "Ibuprofen", "Ibuprofen", ()),
    Substance("ID_DICLOFENAC", "Diklofenak", "Diclofenac", ()),
    Substance("ID_PARACETAMOL", "Paracetamol", "Paracetamol", ()),
    Substance("ID_CODEINE", "Kodein", "Codeine", ("ID_CODEINE_PHOSPHATE",)),
    Substance("ID_CODEINE_PHOSPHATE", "Kodeinfosfathemihydrat", "Codeine phosphate", ()),
    Substance("ID_SIMVASTATIN", "Simvastatin", "Simvastatin", ()),
    Substance("ID_CLARITHROMYCIN", "Klaritromycin", "Clarithromycin", ()),
    Substance("ID_HYPERICUM", "Perikum", "St John's wort", ("ID_HYPERICUM_EXTRACT",)),
    Substance("ID_HYPERICUM_EXTRACT", "Perikumekstrakt", "St John's wort extract", ()),
    Substance("ID_GINKGO", "Ginkgo", "Ginkgo", ("ID_GINKGO_EXTRACT",)),
    Substance("ID_GINKGO_EXTRACT", "Ginkgoekstrakt", "Ginkgo extract", ()),
    Substance("ID_CETIRIZINE", "Cetirizin", "Cetirizine", ()),
    Substance("ID_AMLODIPINE", "Amlodipin", "Amlodipine", ()),
    Substance("ID_ZOPICLONE", "Zopiklon", "Zopiclone", ()),
    Substance("ID_OLANZAPINE", "Olanzapin", "Olanzapine", ()),
    Substance("ID_QUETIAPINE", "Kvetiapin", "Quetiapine", ()),
    Substance("ID_METHOTREXATE", "Metotreksat", "Methotrexate", ()),
    Substance("ID_ENOXAPARIN", "Enoksaparin", "Enoxaparin", ()),
    Substance("ID_COLECALCIFEROL", "Kolekalsiferol", "Colecalciferol", ()),
    Substance("ID_BETHANECHOL", "Betanekol", "Bethanechol", ()),
    Substance("ID_MIGALASTAT", "Migalastat", "Migalastat", ()),
)


def _strength(
    id: str,
    substance: str,
    value: float,
    unit: str = "mg",
    per: tuple[float, str] | None = None,
    component_atc: str | None = None,
) -> Strength:
    return Strength(
        id=id,
        substance_id=substance,
        value=value,
        unit=unit,
        denominator_value=per[0] if per else None,
        denominator_unit=per[1] if per else None,
        operator="L",
        upper_value=None,
        combination_atc=component_atc,
    )


STRENGTHS = (
    _strength("ST_WARFARIN_2_5", "ID_WARFARIN", 2.5),
    _strength("ST_IBUPROFEN_400", "ID_IBUPROFEN", 400),
    _strength("ST_DICLOFENAC_50", "ID_DICLOFENAC", 50),
    _strength("ST_PARACETAMOL_500", "ID_PARACETAMOL", 500),
    _strength("ST_PARACETAMOL_400_COMBI", "ID_PARACETAMOL", 400, component_atc="N02BE01"),
    _strength("ST_CODEINE_30_COMBI", "ID_CODEINE_PHOSPHATE", 30, component_atc="R05DA04"),
    _strength("ST_SIMVASTATIN_20", "ID_SIMVASTATIN", 20),
    _strength("ST_CLARITHROMYCIN_500", "ID_CLARITHROMYCIN", 500),
    _strength("ST_CETIRIZINE_10", "ID_CETIRIZINE", 10),
    _strength("ST_AMLODIPINE_5", "ID_AMLODIPINE", 5),
    _strength("ST_ZOPICLONE_7_5", "ID_ZOPICLONE", 7.5),
    _strength("ST_OLANZAPINE_10", "ID_OLANZAPINE", 10),
    _strength("ST_QUETIAPINE_25", "ID_QUETIAPINE", 25),
    _strength("ST_METHOTREXATE_2_5", "ID_METHOTREXATE", 2.5),
    _strength("ST_ENOXAPARIN_100_ML", "ID_ENOXAPARIN", 100, per=(1, "ml")),
    _strength("ST_COLECALCIFEROL_800_IE", "ID_COLECALCIFEROL", 800, unit="IE"),
    _strength("ST_BETHANECHOL_25", "ID_BETHANECHOL", 25),
    _strength("ST_MIGALASTAT_123", "ID_MIGALASTAT", 123),
)


def _product(
    id: str,
    name: str,
    atc: str | None,
    strengths: tuple[str, ...] = (),
    substances: tuple[str, ...] = (),
    route: str = ORAL,
    form: tuple[str, str] = ("53", "Tablett"),
) -> Product:
    return Product(
        id=id,
        name=name,
        atc=atc,
        form_code=form[0],
        form_name=form[1],
        prescription_group="C",
        route_codes=(route,) if route else (),
        dose_unit_codes=("13",),
        strength_ids=strengths,
        substance_ids=substances,
        prescription_validity=("P1Y",),
    )


PRODUCTS = (
    _product("P_MAREVAN", "Marevan 2,5 mg tablett", "B01AA03", ("ST_WARFARIN_2_5",)),
    _product("P_IBUX", "Ibux 400 mg tablett", "M01AE01", ("ST_IBUPROFEN_400",)),
    _product("P_VOLTAREN", "Voltaren 50 mg enterotablett", "M01AB05", ("ST_DICLOFENAC_50",)),
    _product("P_PARACET", "Paracet 500 mg tablett", "N02BE01", ("ST_PARACETAMOL_500",)),
    _product(
        "P_PARALGIN_FORTE",
        "Paralgin forte 400 mg/30 mg tablett",
        "N02AJ06",
        ("ST_PARACETAMOL_400_COMBI", "ST_CODEINE_30_COMBI"),
    ),
    _product("P_ZOCOR", "Zocor 20 mg tablett", "C10AA01", ("ST_SIMVASTATIN_20",)),
    _product(
        "P_SIMVASTATIN_KRKA", "Simvastatin Krka 20 mg tablett", "C10AA01", ("ST_SIMVASTATIN_20",)
    ),
    _product("P_KLACID", "Klacid 500 mg tablett", "J01FA09", ("ST_CLARITHROMYCIN_500",)),
    _product(
        "P_PERIKUM", "Perikum naturlegemiddel tablett", None, substances=("ID_HYPERICUM_EXTRACT",)
    ),
    _product("P_GINKGO", "Ginkgo tablett", None, substances=("ID_GINKGO",)),
    _product("P_ARNICA", "Arnica C30 globuli", "WITHOUT"),
    _product("P_ZYRTEC", "Zyrtec 10 mg tablett", "R06AE07", ("ST_CETIRIZINE_10",)),
    _product("P_NORVASC", "Norvasc 5 mg tablett", "C08CA01", ("ST_AMLODIPINE_5",)),
    _product("P_IMOVANE", "Imovane 7,5 mg tablett", "N05CF01", ("ST_ZOPICLONE_7_5",)),
    _product("P_ZYPREXA", "Zyprexa 10 mg tablett", "N05AH03", ("ST_OLANZAPINE_10",)),
    _product("P_SEROQUEL", "Seroquel 25 mg tablett", "N05AH04", ("ST_QUETIAPINE_25",)),
    _product(
        "P_METHOTREXATE", "Methotrexate Orion 2,5 mg tablett", "L04AX03", ("ST_METHOTREXATE_2_5",)
    ),
    _product(
        "P_INHIXA",
        "Inhixa 100 mg/ml injeksjonsvæske",
        "B01AB05",
        ("ST_ENOXAPARIN_100_ML",),
        route=SUBCUTANEOUS,
        form=("25", "Injeksjonsvæske"),
    ),
    _product("P_DIVISUN", "Divisun 800 IE tablett", "A11CC05", ("ST_COLECALCIFEROL_800_IE",)),
    _product(
        "P_PARACETAMOL_NO_STRENGTH",
        "Paracetamol mikstur",
        "N02BE01",
        substances=("ID_PARACETAMOL",),
    ),
    _product(
        "P_PARACET_NO_ROUTE", "Paracet stikkpille", "N02BE01", ("ST_PARACETAMOL_500",), route=""
    ),
    _product("P_BETANEKOL", "Betanekol 25 mg tablett", "N07AB02", ("ST_BETHANECHOL_25",)),
    _product("P_GALAFOLD", "Galafold 123 mg kapsel", "A16AX14", ("ST_MIGALASTAT_123",)),
)


def _package(
    id: str,
    product: str,
    varenr: str,
    atc: str | None,
    substitution_group: str | None = None,
) -> Package:
    name = next(p.name for p in PRODUCTS if p.id == product)
    return Package(
        id=id,
        varenr=varenr,
        eans=(f"704626{varenr}0",),
        name=f"{name}, 100 stk",
        atc=atc,
        product_ids=(product,),
        substitution_group_id=substitution_group,
        substitution_valid_from=date(2020, 1, 1) if substitution_group else None,
        substitution_valid_to=None,
        prescription_group="C",
    )


PACKAGES = (
    _package("PK_MAREVAN", "P_MAREVAN", "100001", "B01AA03"),
    _package("PK_IBUX", "P_IBUX", "154021", "M01AE01"),
    _package("PK_IBUX_PARALLEL", "P_IBUX", "154021", "M01AE01"),
    _package("PK_VOLTAREN", "P_VOLTAREN", "100003", "M01AB05"),
    _package("PK_PARACET", "P_PARACET", "017426", "N02BE01"),
    _package("PK_PARALGIN_FORTE", "P_PARALGIN_FORTE", "100005", "N02AJ06"),
    _package("PK_ZOCOR", "P_ZOCOR", "454165", "C10AA01", "SG_SIMVASTATIN_20"),
    _package("PK_SIMVASTATIN_KRKA", "P_SIMVASTATIN_KRKA", "100007", "C10AA01", "SG_SIMVASTATIN_20"),
    _package("PK_KLACID", "P_KLACID", "100008", "J01FA09"),
    _package("PK_PERIKUM", "P_PERIKUM", "100009", None),
    _package("PK_ZYRTEC", "P_ZYRTEC", "100010", "R06AE07"),
    _package("PK_NORVASC", "P_NORVASC", "100011", "C08CA01"),
    _package("PK_IMOVANE", "P_IMOVANE", "100012", "N05CF01"),
    _package("PK_ZYPREXA", "P_ZYPREXA", "100013", "N05AH03"),
    _package("PK_METHOTREXATE", "P_METHOTREXATE", "100014", "L04AX03"),
    _package("PK_INHIXA", "P_INHIXA", "100015", "B01AB05"),
)

GENERIC_GROUPS = (
    GenericGroup(
        id="GG_SIMVASTATIN_20",
        name="Simvastatin tablett 20 mg",
        atc="C10AA01",
        strength_ids=("ST_SIMVASTATIN_20",),
        substance_ids=(),
        product_ids=("P_ZOCOR", "P_SIMVASTATIN_KRKA"),
        package_ids=("PK_ZOCOR", "PK_SIMVASTATIN_KRKA"),
    ),
)

DOSE_UNITS = (
    DoseUnit(
        id="DU_PARACET", product_id="P_PARACET", package_ids=("PK_PARACET",), amount=1, unit="stk"
    ),
)

SUBSTITUTION_GROUPS = (
    SubstitutionGroup(
        id="SG_SIMVASTATIN_20",
        code="000123",
        description="SIMVASTATIN TABLETT 20 MG",
        restricted=False,
        restriction_text=None,
        valid_from=date(2020, 1, 1),
        valid_to=None,
    ),
    SubstitutionGroup(
        id="SG_RESTRICTED",
        code="000554",
        description="KARBAMAZEPIN TABLETTER 200MG",
        restricted=True,
        restriction_text="Begrenset bytte ved epilepsi.",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    ),
)


def _group(
    name: str | None, *members: tuple[str | None, str | None, tuple[str, ...]]
) -> InteractionGroup:
    return InteractionGroup(
        name=name,
        members=tuple(InteractionMember(name=n, atc=a, substance_ids=s) for n, a, s in members),
    )


def _interaction(
    id: str,
    relevance: int,
    *groups: InteractionGroup,
    handling: str | None = None,
    situation: str | None = None,
) -> Interaction:
    return Interaction(
        id=id,
        relevance=relevance,
        situation=situation,
        consequence=f"Klinisk konsekvens av {id}.",
        mechanism="Farmakodynamisk.",
        source_basis_code="1",
        source_basis="Interaksjonsstudier",
        handling=handling,
        display_rules=("1", "4"),
        references=(("Ref A. Tidsskrift 2020;1:1-2", "https://pubmed.ncbi.nlm.nih.gov/1"),),
        groups=groups,
    )


IX_WARFARIN_NSAID = "IX_WARFARIN_NSAID"
IX_SIMVASTATIN_CLARITHROMYCIN = "IX_SIMVASTATIN_CLARITHROMYCIN"
IX_CODEINE_HYPNOTIC = "IX_CODEINE_HYPNOTIC"
IX_HYPERICUM_WARFARIN = "IX_HYPERICUM_WARFARIN"
IX_GINKGO_EXTRACT_WARFARIN = "IX_GINKGO_EXTRACT_WARFARIN"
IX_SMOKING_OLANZAPINE = "IX_SMOKING_OLANZAPINE"
IX_CETIRIZINE_AMLODIPINE = "IX_CETIRIZINE_AMLODIPINE"

WARFARIN_NSAID_HANDLING = (
    "Dosetilpasning: Bruk lavest mulig dose.\n"
    "Monitorering: Følg INR tett.\n"
    "Legemiddelalternativer: Paracetamol."
)

INTERACTIONS = (
    _interaction(
        IX_WARFARIN_NSAID,
        2,
        _group("Warfarin", ("Warfarin", "B01AA03", ())),
        _group(
            "NSAIDs",
            ("Propionsyrederivater", "M01AE", ()),
            ("Ibuprofen", "M01AE01", ()),
            ("Diklofenak", "M01AB05", ()),
        ),
        handling=WARFARIN_NSAID_HANDLING,
    ),
    _interaction(
        IX_SIMVASTATIN_CLARITHROMYCIN,
        1,
        _group("Simvastatin", ("Simvastatin", "C10AA01", ())),
        _group("Klaritromycin", ("Klaritromycin", "J01FA09", ())),
        situation="Gjelder ved alle doser.",
    ),
    _interaction(
        IX_CODEINE_HYPNOTIC,
        2,
        _group("Kodein", ("Kodein", "R05DA04", ())),
        _group("Z-hypnotika", ("Benzodiazepinlignende midler", "N05CF", ())),
    ),
    _interaction(
        IX_HYPERICUM_WARFARIN,
        1,
        _group(
            "Johannesurt",
            ("Perikum", None, ("ID_HYPERICUM",)),
            ("Hyperici herba", "N06AX25", ()),
            ("Naturlegemidler", "WITHOUT", ()),
        ),
        _group("Warfarin", ("Warfarin", "B01AA03", ())),
    ),
    _interaction(
        IX_GINKGO_EXTRACT_WARFARIN,
        2,
        _group("Ginkgo", ("Ginkgoekstrakt", None, ("ID_GINKGO_EXTRACT",))),
        _group("Warfarin", ("Warfarinnatrium", None, ("ID_WARFARIN_NA",))),
    ),
    _interaction(
        IX_SMOKING_OLANZAPINE,
        2,
        _group("Røyking", ("Røyking", "ZV80AA01", ())),
        _group("Olanzapin", ("Olanzapin", "N05AH03", ())),
    ),
    _interaction(
        IX_CETIRIZINE_AMLODIPINE,
        3,
        _group("Cetirizin", ("Cetirizin", "R06AE07", ())),
        _group("Amlodipin", ("Amlodipin", "C08CA01", ())),
    ),
)

NOT_ASSESSED = (
    NotAssessed(atc="N07AB02", name="Betanekol"),
    NotAssessed(atc="A16AX", name="Ulike midler i fordøyelse og stoffskifte"),
)

NOTICE_SIMVASTATIN_GROUP = "VS_SIMVASTATIN_GROUP"
NOTICE_PARACET_PRODUCT = "VS_PARACET_PRODUCT"

NOTICES = (
    Notice(
        id=NOTICE_SIMVASTATIN_GROUP,
        type_code="1",
        type_name="Sikkerhetsinformasjon",
        headline="Ny informasjon om muskelbivirkninger",
        text="Les mer hos DMP.",
        from_date=date(2026, 1, 15),
        link="https://www.dmp.no/varsel/simvastatin",
        references=(("3", "GG_SIMVASTATIN_20"),),
    ),
    Notice(
        id=NOTICE_PARACET_PRODUCT,
        type_code="2",
        type_name="Leveringssvikt",
        headline="Paracet 500 mg er midlertidig utsolgt",
        text=None,
        from_date=date(2026, 2, 1),
        link=None,
        references=(("1", "P_PARACET"),),
    ),
    Notice(
        id="VS_REIMBURSEMENT",
        type_code="4",
        type_name="Refusjon",
        headline="Endret refusjon",
        text=None,
        from_date=None,
        link=None,
        references=(("4", "RG_SOMETHING"),),
    ),
)


def snapshot() -> CatalogueSnapshot:
    return CatalogueSnapshot(
        info=INFO,
        substances=SUBSTANCES,
        strengths=STRENGTHS,
        products=PRODUCTS,
        packages=PACKAGES,
        generic_groups=GENERIC_GROUPS,
        dose_units=DOSE_UNITS,
        substitution_groups=SUBSTITUTION_GROUPS,
        interactions=INTERACTIONS,
        not_assessed=NOT_ASSESSED,
        notices=NOTICES,
    )


@cache
def knowledge() -> Knowledge:
    return Knowledge.build(snapshot())


# -- list entries ------------------------------------------------------------------------------


def med(
    id: str,
    fest_id: str | None = None,
    *,
    atc: str | None = None,
    dosage: Dosage | None = None,
    start: date | None = None,
    stop: date | None = None,
) -> Medication:
    """A list entry ``id`` for the drug named by a FEST id (default: the entry id) or ATC code."""
    drug = knowledge().resolve(atc=atc) if atc else knowledge().resolve(fest_id=fest_id or id)
    return Medication(id=id, drug=drug, dosage=dosage, start=start, stop=stop)


def fixed(amount: float, unit: str = "tablett", *slots: TimeOfDay) -> Dosage:
    """A regular dosage: ``amount unit`` at each time-of-day slot (morning when none given)."""
    return Dosage(
        use=Use.REGULAR,
        fixed=tuple(
            FixedDose(amount=Quantity(value=amount, unit=unit), time_of_day=slot)
            for slot in (slots or (TimeOfDay.MORNING,))
        ),
    )


def weekly(amount: float, unit: str, day: Weekday) -> Dosage:
    return Dosage(
        use=Use.REGULAR,
        fixed=(FixedDose(amount=Quantity(value=amount, unit=unit), weekdays=(day,)),),
    )


def as_needed(
    amount: float,
    unit: str = "tablett",
    *,
    max_per_24h: float | None = None,
    min_interval_hours: float | None = None,
) -> Dosage:
    return Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=amount, unit=unit),
                max_per_24h=Quantity(value=max_per_24h, unit=unit) if max_per_24h else None,
                min_interval=Period(value=min_interval_hours, unit="hour")
                if min_interval_hours
                else None,
            ),
        ),
    )


_Detail = TypeVar("_Detail", bound=BaseModel)


def detail(alert: Alert, kind: type[_Detail]) -> _Detail:
    """The alert's detail, checked to be of ``kind``."""
    assert isinstance(alert.detail, kind), alert.detail
    return alert.detail
