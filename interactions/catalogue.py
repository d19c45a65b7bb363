"""The catalogue records decision support is built from: one FEST catalogue version, as plain data.

These frozen records are the input contract between the catalogue tables (``fest/``, read by an
adapter in ``medloop/``) and ``interactions/``. They name FEST entities in English; the FEST name
is given once, in each docstring. Every ``*_id`` is a FEST domain id (``"ID_8900C2B1-…"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class CatalogueInfo:
    """Provenance of one catalogue version: our version number and FEST ``HentetDato``."""

    version: int
    hentet_dato: str


@dataclass(frozen=True, slots=True)
class Substance:
    """FEST ``Virkestoff``. ``salt_ids`` are its ``RefVirkestoff``: the salts/esters of this moiety.

    A salt's parent is the moiety that lists it.
    """

    id: str
    name: str
    english_name: str | None
    salt_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Strength:
    """FEST ``VirkestoffMedStyrke``: the amount of one substance, per dose form unit or per volume.

    ``operator`` is CV 7445 (L equal, I interval, M less than, S greater than);
    ``combination_atc`` is the component's own ATC code in a combination product
    (``AtcKombipreparat``).
    """

    id: str
    substance_id: str
    value: float
    unit: str
    denominator_value: float | None
    denominator_unit: str | None
    operator: str | None
    upper_value: float | None
    combination_atc: str | None


@dataclass(frozen=True, slots=True)
class Product:
    """FEST ``LegemiddelMerkevare`` (brand product).

    ``strength_ids`` are the ``SortertVirkestoffMedStyrke`` references in ``Sortering`` order;
    ``substance_ids`` the ``SortertVirkestoffUtenStyrke`` references.
    """

    id: str
    name: str
    atc: str | None
    form_code: str | None
    form_name: str | None
    prescription_group: str | None
    route_codes: tuple[str, ...]
    dose_unit_codes: tuple[str, ...]
    strength_ids: tuple[str, ...]
    substance_ids: tuple[str, ...]
    prescription_validity: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Package:
    """FEST ``Legemiddelpakning``, with its generic substitution group (``Byttegruppe``)."""

    id: str
    varenr: str
    eans: tuple[str, ...]
    name: str
    atc: str | None
    product_ids: tuple[str, ...]
    substitution_group_id: str | None
    substitution_valid_from: date | None
    substitution_valid_to: date | None
    prescription_group: str | None


@dataclass(frozen=True, slots=True)
class GenericGroup:
    """FEST ``LegemiddelVirkestoff``: the substance prescribing group."""

    id: str
    name: str
    atc: str | None
    strength_ids: tuple[str, ...]
    substance_ids: tuple[str, ...]
    product_ids: tuple[str, ...]
    package_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DoseUnit:
    """FEST ``Legemiddeldose``: one dose unit of a product (hospital / multidose prescribing)."""

    id: str
    product_id: str
    package_ids: tuple[str, ...]
    amount: float | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class SubstitutionGroup:
    """FEST ``Byttegruppe``; ``restricted`` is ``MerknadTilByttbarhet``."""

    id: str
    code: str
    description: str | None
    restricted: bool
    restriction_text: str | None
    valid_from: date | None
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class InteractionMember:
    """FEST ``Substans`` inside a ``Substansgruppe``: an ATC code and/or substance references."""

    name: str | None
    atc: str | None
    substance_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InteractionGroup:
    """FEST ``Substansgruppe``: one side of an interaction."""

    name: str | None
    members: tuple[InteractionMember, ...]


@dataclass(frozen=True, slots=True)
class Interaction:
    """FEST ``Interaksjon``. ``relevance`` is ``Relevans`` (CS 7483: 1 avoid, 2 precautions,
    3 no action); ``references`` are ``(Kilde, Lenke)`` pairs."""

    id: str
    relevance: int
    situation: str | None
    consequence: str
    mechanism: str | None
    source_basis_code: str | None
    source_basis: str | None
    handling: str | None
    display_rules: tuple[str, ...]
    references: tuple[tuple[str, str | None], ...]
    groups: tuple[InteractionGroup, ...]


@dataclass(frozen=True, slots=True)
class NotAssessed:
    """FEST ``InteraksjonIkkeVurdert``: an ATC code whose interactions have not been assessed."""

    atc: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Notice:
    """FEST ``VarselSlv`` (DMP notice). ``references`` are ``(Klasse, RefElement)`` pairs, Klasse
    CS 7486: '1' Merkevare, '2' Pakning, '3' LegemiddelVirkestoff, '4' Refusjonsgruppe.
    ``id`` is the FEST entry id."""

    id: str
    type_code: str
    type_name: str | None
    headline: str
    text: str | None
    from_date: date | None
    link: str | None
    references: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class AtcCode:
    """One code of FEST's ATC code system (``Kodeverk`` 7180, ``Element``): the code at any level
    (1-5, and the fictional ``ZV80AA..`` codes) with its Norwegian ``Term`` and, where FEST gives
    one, the English term (``Sprak`` EN)."""

    code: str
    name: str | None
    english_name: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogueSnapshot:
    """Everything decision support reads from one catalogue version."""

    info: CatalogueInfo
    substances: tuple[Substance, ...]
    strengths: tuple[Strength, ...]
    products: tuple[Product, ...]
    packages: tuple[Package, ...]
    generic_groups: tuple[GenericGroup, ...]
    dose_units: tuple[DoseUnit, ...]
    substitution_groups: tuple[SubstitutionGroup, ...]
    interactions: tuple[Interaction, ...]
    not_assessed: tuple[NotAssessed, ...]
    notices: tuple[Notice, ...]
    atc_codes: tuple[AtcCode, ...] = ()
    """The ATC code system (Kodeverk 7180) when the catalogue carries it: every valid code with
    its name, also the codes no product in the catalogue carries."""
