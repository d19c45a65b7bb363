"""The catalogue tables (SQLAlchemy Core), shared by the loader and by readers.

Versioning is by validity range: every stored entry row (``fest_entry``) carries the
catalogue version that introduced it (``valid_from``) and the version that ended it
(``valid_to``, NULL while in force).  An entry row never changes content; a changed FEST
entry arrives with a new entry id and becomes a new row.  The rows of version *N* are
those with ``valid_from <= N`` and ``valid_to`` NULL or ``> N``.

Typed tables hang off ``fest_entry.id`` (the ``entry`` column).  Every cross-reference
of every payload is also written to ``fest_ref`` so that all references can be resolved
(and unresolvable ones counted) with one query.  The raw payload XML is kept per row for
everything the typed columns do not carry (NULL for the kinds in
:data:`fest.records.FULLY_TYPED`, whose typed rows carry every element).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Counted catalogue kinds (the keys of ``medloop fest stats --json``).
COUNTED_KINDS = (
    "LegemiddelMerkevare",
    "Legemiddelpakning",
    "LegemiddelVirkestoff",
    "Legemiddeldose",
    "Virkestoff",
    "VirkestoffMedStyrke",
    "Interaksjon",
    "InteraksjonIkkeVurdert",
    "Byttegruppe",
    "Refusjonshjemmel",
    "Vilkar",
    "VarselSlv",
    "Kortdose",
    "Handelsvare",
)


def _entry_fk() -> Column:
    return Column(
        "entry", Integer, ForeignKey("fest_entry.id", ondelete="CASCADE"), primary_key=True
    )


def _entry_ref() -> Column:
    return Column(
        "entry",
        Integer,
        ForeignKey("fest_entry.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


fest_version = Table(
    "fest_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("hentet_dato", String(40), nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("source_name", String(500), nullable=False),
    Column("fest_version", String(10), nullable=False),
    Column("mode", String(12), nullable=False),  # full | incremental
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("seconds", Float, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("changes", JSON, nullable=False),  # added / replaced / expired per kind
    Column("warnings", JSON, nullable=False),
)

fest_entry = Table(
    "fest_entry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("domain_id", String(80), nullable=False),
    Column("entry_id", String(80), nullable=False),
    Column("tidspunkt", String(40)),
    Column("valid_from", Integer, ForeignKey("fest_version.id"), nullable=False),
    Column("valid_to", Integer, ForeignKey("fest_version.id")),
    Column("payload", Text),
    Index("ix_fest_entry_kind_domain", "kind", "domain_id", "valid_to"),
    Index("ix_fest_entry_entry_id", "entry_id"),
    Index("ix_fest_entry_current", "valid_to", "kind"),
)

fest_ref = Table(
    "fest_ref",
    metadata,
    _entry_ref(),
    Column("field", String(60), nullable=False),
    Column("position", Integer, nullable=False),
    Column("target_kind", String(32), nullable=False),
    Column("target_id", String(80), nullable=False),
    Index("ix_fest_ref_target", "target_kind", "target_id"),
)

# Shared typeLegemiddel fields of LegemiddelMerkevare, Legemiddelpakning,
# LegemiddelVirkestoff and Legemiddeldose, plus the few fields specific to each kind.
fest_drug = Table(
    "fest_drug",
    metadata,
    _entry_fk(),
    Column("kind", String(32), nullable=False),
    Column("domain_id", String(80), nullable=False, index=True),
    Column("atc", String(16), index=True),
    Column("atc_name", String(300)),
    Column("name", String(500), nullable=False),  # NavnFormStyrke
    Column("prescription_group", String(4)),  # Reseptgruppe
    Column("form_code", String(16)),  # LegemiddelformKort
    Column("form_name", String(200)),
    Column("product_type", String(8)),  # Preparattype
    Column("product_type_name", String(100)),
    Column("application_type", String(8)),  # TypeSoknadSlv
    Column("opioid_application", Boolean, nullable=False),
    Column("black_triangle", Boolean, nullable=False),  # SvartTrekant
    Column("routes", JSON),  # AdministreringLegemiddel/Administrasjonsvei [{code, name}]
    Column("can_crush", String(4)),  # KanKnuses (1 yes, 2 no, 9 unknown; NULL = not stated)
    Column("can_open", String(4)),  # KanApnes
    Column("division", String(4)),  # Deling
    Column("dose_units", JSON),  # EnhetDosering
    Column("short_doses", JSON),  # Kortdose
    Column("intake_precautions", JSON),  # ForhandsregelInntak
    Column("label_usages", JSON),  # BruksomradeEtikett
    Column("refunds", JSON),  # Refusjon [{groups, valid_from, prescribe_to, dispense_to}]
    Column("substitution_group_id", String(80), index=True),  # PakningByttegruppe
    Column("substitution_valid_from", Date),
    Column("substitution_valid_to", Date),
    Column("brand_name", String(300)),  # Varenavn (Merkevare)
    Column("form_long", String(300)),  # LegemiddelformLang (Merkevare)
    Column("manufacturer", String(300)),  # ProduktInfo/Produsent (Merkevare)
    Column("prescription_validity", JSON),  # Reseptgyldighet [{gender, duration}]
    Column("varenr", String(16), index=True),  # Legemiddelpakning
    Column("storage", String(4)),  # Oppbevaring
    Column("marketing", JSON),  # Markedsforingsinfo
    Column(
        "prices", JSON
    ),  # PrisVare [{type_code, type_name, price, currency, valid_from, valid_to}]
    Column("lmr_number", String(16)),  # Legemiddeldose/LmrLopenr
    Column("amount_value", Float),  # Legemiddeldose/Mengde
    Column("amount_unit", String(16)),
)

fest_package_info = Table(
    "fest_package_info",
    metadata,
    _entry_ref(),
    Column("position", Integer, nullable=False),
    Column("product_id", String(80), nullable=False, index=True),  # RefLegemiddelMerkevare
    Column("pack_size", String(40)),  # Pakningsstr
    Column("pack_unit", String(16)),  # EnhetPakning
    Column("pack_type", String(16)),  # Pakningstype
    Column("pack_type_name", String(100)),
    Column("multiple", Integer),
    Column("count", Integer),
    Column("amount", Float),  # Mengde
    Column("ddd_value", Float),
    Column("ddd_unit", String(16)),
    Column("statistics_factor", Float),
)

fest_package_ean = Table(
    "fest_package_ean",
    metadata,
    _entry_ref(),
    Column("ean", String(20), nullable=False, index=True),
)

fest_substance = Table(  # Virkestoff
    "fest_substance",
    metadata,
    _entry_fk(),
    Column("domain_id", String(80), nullable=False, index=True),
    Column("name", String(300), nullable=False),
    Column("english_name", String(300)),
)

fest_strength = Table(  # VirkestoffMedStyrke
    "fest_strength",
    metadata,
    _entry_fk(),
    Column("domain_id", String(80), nullable=False, index=True),
    Column("value", Float, nullable=False),
    Column("unit", String(16)),
    Column("denominator_value", Float),
    Column("denominator_unit", String(16)),
    Column("substance_id", String(80), nullable=False),
    Column("alt_value", Float),
    Column("alt_unit", String(16)),
    Column("alt_denominator_value", Float),
    Column("alt_denominator_unit", String(16)),
    Column("operator", String(4)),
    Column("upper_value", Float),
    Column("combination_atc", String(16)),  # AtcKombipreparat
    Column("combination_atc_name", String(300)),
)

fest_interaction = Table(
    "fest_interaction",
    metadata,
    _entry_fk(),
    Column("domain_id", String(80), nullable=False, index=True),
    Column("relevance", Integer, nullable=False),
    Column("relevance_name", String(100)),
    Column("situation", Text),  # Situasjonskriterium
    Column("consequence", Text, nullable=False),  # KliniskKonsekvens
    Column("mechanism", Text),  # Interaksjonsmekanisme
    Column("source_basis_code", String(4)),  # Kildegrunnlag
    Column("source_basis_name", String(100)),
    Column("handling", Text),  # Handtering
    Column("display_rules", JSON),  # Visningsregel
    Column("references", JSON),  # Referanse [{source, link}]
    # Substansgruppe: [{name, members: [{name, atc, atc_name, substance_ids}]}]
    Column("groups", JSON, nullable=False),
)

fest_not_assessed = Table(  # InteraksjonIkkeVurdert
    "fest_not_assessed",
    metadata,
    _entry_fk(),
    Column("atc", String(16), nullable=False, index=True),
    Column("atc_name", String(300)),
)

fest_substitution_group = Table(  # Byttegruppe
    "fest_substitution_group",
    metadata,
    _entry_fk(),
    Column("domain_id", String(80), nullable=False, index=True),
    Column("code", String(16), nullable=False),
    Column("description", String(500)),
    Column("restricted", Boolean, nullable=False),  # MerknadTilByttbarhet
    Column("restriction_text", Text),
    Column("valid_from", Date),
    Column("valid_to", Date),
)

fest_refund_basis = Table(  # Refusjonshjemmel
    "fest_refund_basis",
    metadata,
    _entry_fk(),
    Column("basis_code", String(16), nullable=False),
    Column("basis_name", String(200)),
    Column("requires_product_link", Boolean, nullable=False),  # KreverVarekobling
    Column("requires_decision", Boolean, nullable=False),  # KreverVedtak
)

fest_refund_group = Table(  # Refusjonsgruppe
    "fest_refund_group",
    metadata,
    _entry_ref(),
    Column("group_id", String(80), nullable=False, index=True),
    Column("group_no", String(40)),
    Column("group_name", String(300)),
    Column("atc", String(16)),
    Column("requires_refund_code", Boolean),
    Column("usage_text", Text),
    Column("codes", JSON),  # Refusjonskode [{system, code, name, underterm, valid_from, ...}]
)

fest_condition = Table(  # Vilkar
    "fest_condition",
    metadata,
    _entry_fk(),
    Column("domain_id", String(80), nullable=False, index=True),
    Column("number", String(16)),
    Column("group_code", String(8)),
    Column("group_name", String(100)),
    Column("applies_to", String(8)),
    Column("text", Text, nullable=False),
    Column("valid_from", Date),
    Column("valid_to", Date),
    Column("structured", JSON),
)

fest_notice = Table(  # VarselSlv
    "fest_notice",
    metadata,
    _entry_fk(),
    Column("type_code", String(8), nullable=False),
    Column("type_name", String(100)),
    Column("headline", String(500), nullable=False),
    Column("text", Text),
    Column("from_date", Date),
    Column("link", String(1000)),
    Column("link_text", String(500)),
    Column("display_rules", JSON),
    Column("coded_info", JSON),
)

fest_code_system = Table(  # Kodeverk/Info
    "fest_code_system",
    metadata,
    _entry_fk(),
    Column("oid", String(80), nullable=False, index=True),
    Column("name", String(300)),
    Column("short_name", String(100)),
    Column("publisher", String(300)),
)

fest_code = Table(  # Kodeverk/Element
    "fest_code",
    metadata,
    _entry_ref(),
    Column("element_id", String(80)),
    Column("parent_id", String(80)),
    Column("code", String(80), nullable=False),
    Column("term", String(500)),
    Column("description", Text),  # BeskrivelseTerm, e.g. "1 <dose> daglig"
    Column("terms", JSON),
)

fest_short_dose = Table(  # StrDosering/Kortdose
    "fest_short_dose",
    metadata,
    _entry_fk(),
    Column("code", String(16), nullable=False, index=True),
    Column("name", String(200)),
    Column("description", Text),
    Column("phases", JSON),  # Legemiddelforbruk
)

fest_commodity = Table(  # Handelsvare
    "fest_commodity",
    metadata,
    _entry_fk(),
    Column("nr", String(40), nullable=False, index=True),
    Column(
        "commodity_type", String(32), nullable=False
    ),  # MedForbMatr | Naringsmiddel | Brystprotese
    Column("name", String(500)),
    Column("supplier", String(300)),
)
