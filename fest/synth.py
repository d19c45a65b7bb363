"""Synthetic FEST M30 catalogue generator.

This module owns :func:`write_synthetic`, which writes a complete FEST 2.5.1 *full* extract
(M30 namespace ``2014-12-01``) filled with invented but production-shaped data. The output
validates against the official ``ER-M30-2014-12-01.xsd``, every ``Ref*`` IDREF resolves inside
the file, and the same ``(scale, seed)`` always gives byte-identical output.

What is synthetic: the ATC tree below level 1, every substance, brand, company, price, text,
URL and GUID. What is real: the element structure, the catalogue order, the code-system OIDs
and most coded values (Reseptgruppe, Relevans, Kildegrunnlag, price types, routes, package
types, diagnosis codes, a subset of the 7403 product groups) as seen in real extracts and the
specifications. Three dosage-form codes (7448) are invented because no real value was at hand:
``151`` Krem, ``152`` Inhalasjonspulver, ``153`` Øredråper; so are the short-dose codes (7478,
numbered from 5500) and most label codes (7488).

At ``scale=1.0`` the entry counts follow a 2026 production file (about 9 000 brands, 11 000
packages, 11 000 interactions; about 112 MB of XML, written in a few seconds). Counts scale
linearly with a floor of 5 per catalogue; a few catalogues that depend on others may come out
smaller at tiny scales (never below 1), and the structured short doses stop at 281 codes.
The file is streamed as text through a buffer; no XML tree is built in memory.
"""

from __future__ import annotations

import os
import uuid
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate, zip_longest
from itertools import product as cartesian
from random import Random
from typing import TextIO

__all__ = ["write_synthetic"]

NS_M30 = "http://www.kith.no/xmlstds/eresept/m30/2014-12-01"
NS_FS = "http://www.kith.no/xmlstds/eresept/forskrivning/2014-12-01"
_OID = "2.16.578.1.12.4.1.1."
_FS = f' xmlns="{NS_FS}"'

# Entry counts of a 2026 production fest251.xml; scale=1.0 reproduces them.
_BASE_COUNTS: dict[str, int] = {
    "LegemiddelMerkevare": 8962,
    "Legemiddelpakning": 10828,
    "LegemiddelVirkestoff": 2196,
    "Legemiddeldose": 9467,
    "Virkestoff": 8639,
    "VirkestoffMedStyrke": 7721,
    "Interaksjon": 11000,
    "InteraksjonIkkeVurdert": 450,
    "Byttegruppe": 1721,
    "Refusjonshjemmel": 1158,
    "Vilkar": 205,
    "VarselSlv": 120,
    "Kortdose": 60,
    "Handelsvare": 6309,
}
_MIN_COUNT = 5

# --------------------------------------------------------------------------------------------
# Reference tables
# --------------------------------------------------------------------------------------------

_L1: tuple[tuple[str, str, int], ...] = (
    ("A", "Fordøyelsesorganer og stoffskifte", 12),
    ("B", "Blod og bloddannende organer", 5),
    ("C", "Hjerte og kretsløp", 12),
    ("D", "Dermatologiske midler", 6),
    ("G", "Urogenitalsystem og kjønnshormoner", 7),
    ("H", "Hormoner til systemisk bruk, ekskl. kjønnshormoner og insuliner", 3),
    ("J", "Antiinfektiva til systemisk bruk", 11),
    ("L", "Antineoplastiske og immunmodulerende midler", 12),
    ("M", "Muskler og skjelett", 6),
    ("N", "Nervesystemet", 16),
    ("R", "Respirasjonsorganer", 5),
    ("S", "Sanseorganer", 3),
    ("V", "Varia", 2),
)

_L2_NAMES: dict[str, tuple[str, ...]] = {
    "A": (
        "Midler mot syrerelaterte lidelser",
        "Midler mot funksjonelle gastrointestinale lidelser",
        "Antiemetika og midler mot kvalme",
        "Galle- og leverterapi",
        "Laksantia",
        "Antidiarroika og tarmantiseptika",
        "Midler til diabetesbehandling",
        "Vitaminer",
        "Mineraltilskudd",
        "Andre midler med virkning på fordøyelse og stoffskifte",
    ),
    "B": (
        "Antitrombotiske midler",
        "Antihemoragika",
        "Antianemiske preparater",
        "Blodsubstitutter og perfusjonsvæsker",
        "Andre hematologiske midler",
    ),
    "C": (
        "Hjerteterapi",
        "Antihypertensiva",
        "Diuretika",
        "Perifere vasodilatorer",
        "Betablokkere",
        "Kalsiumantagonister",
        "Midler med virkning på renin-angiotensinsystemet",
        "Lipidmodifiserende midler",
    ),
    "D": (
        "Antimykotika til dermatologisk bruk",
        "Emollienter og hudbeskyttende midler",
        "Midler mot psoriasis",
        "Antibiotika og kjemoterapeutika til dermatologisk bruk",
        "Kortikosteroider, dermatologiske preparater",
        "Aknemidler",
    ),
    "G": (
        "Gynekologiske antiinfektiva og antiseptika",
        "Andre gynekologiske midler",
        "Kjønnshormoner og midler med effekt på genitalia",
        "Urologika",
    ),
    "H": (
        "Hypofyse- og hypothalamushormoner",
        "Kortikosteroider til systemisk bruk",
        "Tyreoideaterapi",
        "Pankreashormoner",
        "Midler som påvirker kalsiumhomøostasen",
    ),
    "J": (
        "Antibakterielle midler til systemisk bruk",
        "Antimykotika til systemisk bruk",
        "Midler mot mykobakterier",
        "Antivirale midler til systemisk bruk",
        "Immunsera og immunglobuliner",
        "Vaksiner",
    ),
    "L": (
        "Antineoplastiske midler",
        "Endokrin terapi",
        "Immunstimulerende midler",
        "Immunsuppressive midler",
    ),
    "M": (
        "Antiinflammatoriske og antirevmatiske midler",
        "Topikale midler mot muskel- og leddsmerter",
        "Muskelrelaksantia",
        "Giktmidler",
        "Midler til behandling av skjelettsykdommer",
    ),
    "N": (
        "Anestetika",
        "Analgetika",
        "Antiepileptika",
        "Midler mot parkinsonisme",
        "Psykoleptika",
        "Psykoanaleptika",
        "Andre midler med virkning på nervesystemet",
    ),
    "R": (
        "Nesepreparater",
        "Hals- og munnhulepreparater",
        "Midler mot obstruktiv lungesykdom",
        "Hoste- og forkjølelsesmidler",
        "Antihistaminer til systemisk bruk",
    ),
    "S": ("Otologika", "Oftalmologika", "Oftalmologiske og otologiske preparater"),
    "V": ("Allergener", "Alle andre terapeutiske produkter", "Diagnostika", "Kontrastmidler"),
}
_L3_QUALIFIERS = (
    "usammensatte preparater",
    "kombinasjoner",
    "systemiske preparater",
    "selektive midler",
    "ikke-selektive midler",
    "kortvirkende midler",
    "langtidsvirkende midler",
    "andre midler",
)
_L4_CHEMISTRY = (
    "Benzimidazol",
    "Piperazin",
    "Fenotiazin",
    "Dihydropyridin",
    "Imidazol",
    "Triazol",
    "Kinolon",
    "Tetrasyklin",
    "Steroid",
    "Aminosyre",
    "Pyrimidin",
    "Purin",
    "Benzodiazepin",
    "Morfinan",
    "Tiazid",
    "Sulfonamid",
    "Karbamat",
    "Indol",
    "Pyrrolidin",
    "Kumarin",
    "Fenylalkylamin",
    "Butyrofenon",
    "Tioxanten",
    "Propionsyre",
    "Eddiksyre",
    "Salisylsyre",
    "Oksikam",
    "Peptid",
    "Nukleosid",
    "Glykopeptid",
    "Makrolid",
    "Cefalosporin",
)
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "A": (
        "prazol",
        "tidin",
        "gliptin",
        "glinid",
        "gliflozin",
        "setron",
        "pramid",
        "lutid",
        "sakkarid",
        "kalsiferol",
    ),
    "B": ("parin", "ksaban", "gatran", "grel", "plase", "poetin", "stat"),
    "C": (
        "olol",
        "pril",
        "sartan",
        "dipin",
        "statin",
        "tiazid",
        "semid",
        "azosin",
        "kalim",
        "daron",
        "fibrat",
    ),
    "D": ("konazol", "metason", "tretinoin", "fenin", "krolimus", "rosen", "kortid"),
    "G": ("estradiol", "gestrel", "osin", "afil", "sterid", "fenasin", "relix"),
    "H": ("relin", "tropin", "solon", "tiamazol", "pressin", "kalsitol", "tocin"),
    "J": ("cillin", "mycin", "floksacin", "syklin", "vir", "fungin", "penem", "cef", "mab"),
    "L": ("mab", "nib", "platin", "taksel", "limus", "rubicin", "tinib", "zumab", "cept"),
    "M": ("profen", "koksib", "dronat", "fenak", "kuronium", "kam"),
    "N": (
        "pam",
        "zolam",
        "etin",
        "pramin",
        "triptan",
        "idon",
        "barbital",
        "kain",
        "peridol",
        "tiapin",
        "gabalin",
        "morfon",
        "fentanil",
        "pezil",
    ),
    "R": ("terol", "lukast", "tadin", "sonid", "tropium", "fyllin", "kodon"),
    "S": ("prost", "olol", "lamid", "floksacin", "tropin", "kain"),
    "V": ("gadoat", "jodol", "tekat", "fosfat", "meglumin"),
}
_SYLLABLES = (
    "ba",
    "be",
    "bi",
    "bo",
    "da",
    "de",
    "di",
    "do",
    "fa",
    "fe",
    "fi",
    "ka",
    "ke",
    "ki",
    "ko",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "na",
    "ne",
    "ni",
    "no",
    "pa",
    "pe",
    "pi",
    "po",
    "ra",
    "re",
    "ri",
    "ro",
    "sa",
    "se",
    "si",
    "so",
    "ta",
    "te",
    "ti",
    "to",
    "va",
    "ve",
    "vi",
    "tra",
    "tri",
    "pra",
    "pro",
    "kla",
    "kle",
    "dro",
    "gra",
    "gli",
    "fla",
    "flu",
    "ze",
    "zo",
    "ser",
    "ter",
    "dal",
    "mal",
    "nor",
    "ben",
    "dek",
    "lor",
    "tan",
    "vel",
    "rim",
    "sul",
)
_BRAND_ENDINGS = (
    "x",
    "n",
    "r",
    "l",
    "ra",
    "na",
    "va",
    "in",
    "ex",
    "on",
    "ia",
    "or",
    "an",
    "ol",
    "it",
    "ax",
    "el",
    "is",
)
_SALTS = (
    ("hydroklorid", "hydrochloride"),
    ("natrium", "sodium"),
    ("kalium", "potassium"),
    ("maleat", "maleate"),
    ("mesilat", "mesilate"),
    ("fumarat", "fumarate"),
    ("tartrat", "tartrate"),
    ("sulfat", "sulfate"),
    ("besilat", "besilate"),
    ("fosfat", "phosphate"),
    ("acetat", "acetate"),
    ("hydrobromid", "hydrobromide"),
    ("monohydrat", "monohydrate"),
    ("kalsium", "calcium"),
)
_HERBALS = (
    ("Perikum", "Hyperici herba"),
    ("Ginkgo", "Ginkgo folium"),
    ("Valeriana", "Valerianae radix"),
    ("Echinacea", "Echinaceae purpureae herba"),
    ("Ginseng", "Ginseng radix"),
    ("Rosenrot", "Rhodiolae roseae rhizoma"),
    ("Humle", "Lupuli flos"),
    ("Hvitløk", "Allii sativi bulbus"),
    ("Grønn te", "Camelliae sinensis folium"),
    ("Mariatistel", "Silybi mariani fructus"),
    ("Sølvlys", "Cimicifugae rhizoma"),
    ("Lakris", "Liquiritiae radix"),
    ("Sagpalme", "Sabalis serrulatae fructus"),
    ("Tranebær", "Vaccinii macrocarpi fructus"),
    ("Pasjonsblomst", "Passiflorae herba"),
)
_COMPANIES = (
    "Fjordpharm AS",
    "Nordavia Pharma AB",
    "Polarmed Generics",
    "Vestfarma AS",
    "Aurelia Pharma GmbH",
    "Medanor AS",
    "Skandigen A/S",
    "Boreal Pharma Oy",
    "Kvitfjell Legemidler AS",
    "Lumen Generics Ltd",
    "Solberg Pharma AS",
    "Havbris Pharma",
    "Tindra Medical",
    "Nordlys Farmasi AS",
    "Arktika Pharma",
    "Elvia Generics",
    "Granitt Pharma AS",
    "Saga Medica AB",
    "Runa Pharma",
    "Stella Nordic",
    "Fenris Pharma AS",
    "Berg & Lie Pharma AS",
    "Valdres Pharma",
    "Bergfarma AS",
    "Kystfarma AS",
    "Midnattsol Medical",
    "Aasgard Pharma",
)
_FICTIONAL_ATC = (
    ("ZV80AA01", "Tobakksrøyking"),
    ("ZV80AA02", "Grapefruktjuice"),
    ("ZV80AA03", "Alkohol (etanol)"),
)

# (code, DN) of dosing units (7480) with the plural form used in Kodeverk.
_DOSE_UNITS: dict[str, tuple[str, str, str]] = {
    "tablett": ("13", "tablett", "tabletter"),
    "kapsel": ("6", "kapsel", "kapsler"),
    "ml": ("8", "ml", "ml"),
    "plaster": ("16", "plaster", "plastre"),
    "dose": ("19", "dose", "doser"),
    "sprøyte": ("11", "sprøyte", "sprøyter"),
    "IE": ("17", "IE", "IE"),
    "mg": ("70", "mg", "mg"),
    "E": ("79", "E", "E"),
}


@dataclass(frozen=True, slots=True)
class _Form:
    """One pharmaceutical form (7448) with everything needed to package it."""

    code: str
    dn: str
    abbrev: str
    long_names: tuple[str, ...]
    routes: tuple[tuple[str, str], ...]
    dose_unit: str | None
    kind: str  # solid | inj | patch | semi | liquid | inhal
    pack_unit: tuple[str, str]
    pack_types: tuple[tuple[str, str], ...]
    sizes: tuple[int, ...]
    plural: str


_ORAL = (("53", "Oral bruk"),)
_STK = ("stk", "stykk")
_ML = ("ml", "milliliter")
_BLISTER = (
    ("169", "Blisterpakning"),
    ("8", "Boks"),
    ("55", "Boks av plast"),
    ("98", "Kalenderpakning"),
    ("18", "Blisterpakning, endose"),
)
_SOLID_SIZES = (10, 14, 20, 28, 30, 50, 56, 98, 100)
_FORMS: dict[str, _Form] = {
    "tab": _Form(
        "53",
        "Tablett",
        "tab",
        ("Tablett", "Tablett, filmdrasjert"),
        _ORAL,
        "tablett",
        "solid",
        _STK,
        _BLISTER,
        _SOLID_SIZES,
        "TABLETTER",
    ),
    "depottab": _Form(
        "25",
        "Depottablett",
        "depottab",
        ("Depottablett",),
        _ORAL,
        "tablett",
        "solid",
        _STK,
        _BLISTER,
        _SOLID_SIZES,
        "DEPOTTABLETTER",
    ),
    "disptab": _Form(
        "5",
        "Dispergerbar tablett",
        "disperg tab",
        ("Dispergerbar tablett",),
        _ORAL,
        "tablett",
        "solid",
        _STK,
        _BLISTER,
        _SOLID_SIZES,
        "DISPERGERBARE TABLETTER",
    ),
    "kaps": _Form(
        "32",
        "Kapsel",
        "kaps",
        ("Kapsel, hard", "Kapsel, myk"),
        _ORAL,
        "kapsel",
        "solid",
        _STK,
        _BLISTER,
        _SOLID_SIZES,
        "KAPSLER",
    ),
    "enterokaps": _Form(
        "27",
        "Enterokapsel",
        "enterokaps",
        ("Enterokapsel, hard",),
        _ORAL,
        "kapsel",
        "solid",
        _STK,
        _BLISTER,
        _SOLID_SIZES,
        "ENTEROKAPSLER",
    ),
    "depotkaps": _Form(
        "24",
        "Depotkapsel",
        "depotkaps",
        ("Depotkapsel, hard",),
        _ORAL,
        "kapsel",
        "solid",
        _STK,
        _BLISTER,
        _SOLID_SIZES,
        "DEPOTKAPSLER",
    ),
    "inj": _Form(
        "101",
        "Injeksjonsvæske",
        "inj",
        ("Injeksjonsvæske, oppløsning", "Injeksjonsvæske, suspensjon"),
        (("43", "Intravenøs bruk"), ("62", "Subkutan bruk"), ("33", "Intramuskulær bruk")),
        "ml",
        "inj",
        _ML,
        (("37", "Hetteglass"), ("27", "Ferdigfylt sprøyte"), ("25", "Ferdigfylt penn")),
        (1, 2, 5, 10),
        "INJEKSJONSVÆSKE",
    ),
    "infkons": _Form(
        "460",
        "Konsentrat til infusjonsvæske",
        "kons til inf",
        ("Konsentrat til infusjonsvæske, oppløsning",),
        (("43", "Intravenøs bruk"),),
        "ml",
        "inj",
        _ML,
        (("37", "Hetteglass"),),
        (5, 10, 20, 50, 100),
        "KONSENTRAT TIL INFUSJONSVÆSKE",
    ),
    "plaster": _Form(
        "58",
        "Depotplaster",
        "depotplaster",
        ("Depotplaster",),
        (("65", "Transdermal bruk"),),
        "plaster",
        "patch",
        _STK,
        (("30", "Foliepose"),),
        (4, 5, 8, 10, 16, 30),
        "DEPOTPLASTER",
    ),
    "salve": _Form(
        "46",
        "Salve",
        "salve",
        ("Salve",),
        (("8", "Bruk på hud"),),
        None,
        "semi",
        ("g", "gram"),
        (("95", "Tube"),),
        (15, 30, 50, 100),
        "SALVE",
    ),
    "krem": _Form(
        "151",
        "Krem",
        "krem",
        ("Krem",),
        (("8", "Bruk på hud"),),
        None,
        "semi",
        ("g", "gram"),
        (("95", "Tube"),),
        (15, 30, 60, 100),
        "KREM",
    ),
    "mikst": _Form(
        "9",
        "Mikstur",
        "mikst",
        ("Mikstur, oppløsning", "Mikstur, suspensjon"),
        _ORAL,
        "ml",
        "liquid",
        _ML,
        (("56", "Flaske av plast"),),
        (100, 150, 200, 300, 500),
        "MIKSTUR",
    ),
    "inhal": _Form(
        "152",
        "Inhalasjonspulver",
        "inh pulv",
        ("Inhalasjonspulver",),
        (("11", "Bruk til inhalasjon"),),
        "dose",
        "inhal",
        ("dose", "dose"),
        (("55", "Boks av plast"),),
        (30, 60, 120),
        "INHALASJONSPULVER",
    ),
    "oredr": _Form(
        "153",
        "Øredråper, oppløsning",
        "øredr",
        ("Øredråper, oppløsning",),
        (("6", "Bruk i øret"),),
        "dose",
        "liquid",
        _ML,
        (("56", "Flaske av plast"),),
        (5, 10, 15),
        "ØREDRÅPER",
    ),
}
_FORM_WEIGHTS: dict[str, tuple[tuple[str, int], ...]] = {
    "A": (
        ("tab", 40),
        ("kaps", 12),
        ("enterokaps", 15),
        ("mikst", 8),
        ("inj", 12),
        ("depottab", 5),
        ("disptab", 8),
    ),
    "B": (("tab", 50), ("inj", 40), ("infkons", 10)),
    "C": (("tab", 60), ("depottab", 15), ("kaps", 10), ("inj", 8), ("plaster", 7)),
    "D": (("salve", 40), ("krem", 50), ("tab", 10)),
    "G": (("tab", 55), ("kaps", 15), ("plaster", 15), ("krem", 15)),
    "H": (("tab", 60), ("inj", 40)),
    "J": (("tab", 35), ("kaps", 20), ("mikst", 10), ("inj", 25), ("infkons", 10)),
    "L": (("tab", 30), ("kaps", 15), ("inj", 30), ("infkons", 25)),
    "M": (("tab", 55), ("depottab", 10), ("kaps", 10), ("krem", 15), ("inj", 10)),
    "N": (
        ("tab", 45),
        ("depottab", 10),
        ("kaps", 15),
        ("depotkaps", 5),
        ("mikst", 5),
        ("inj", 12),
        ("plaster", 8),
    ),
    "R": (("tab", 30), ("inhal", 40), ("mikst", 20), ("kaps", 10)),
    "S": (("oredr", 70), ("salve", 30)),
    "V": (("inj", 80), ("mikst", 20)),
}
_MASS_VALUES: dict[str, tuple[float, ...]] = {
    "mg": (
        0.1,
        0.25,
        0.5,
        1,
        2,
        2.5,
        4,
        5,
        8,
        10,
        12.5,
        15,
        20,
        25,
        30,
        40,
        50,
        75,
        80,
        100,
        150,
        200,
        250,
        300,
        400,
        500,
        600,
        750,
        800,
        1000,
    ),
    "mcg": (5, 10, 12, 25, 50, 75, 88, 100, 125, 200, 250, 400),
    "g": (1, 2, 3, 4),
    "IE": (100, 400, 1000, 5000, 10000, 25000),
}
_CONC_VALUES = (0.5, 1, 2, 2.5, 5, 10, 20, 25, 40, 50, 100)
_ADMIN_PRECAUTIONS = (
    ("49", "Svelges hel"),
    ("50", "Svelges hel med 1 glass vann"),
    ("54", "Tas etter måltid"),
    ("64", "Tas til måltid"),
    ("66", "Tas utenom måltid"),
    ("92", "Svelges med 1 glass vann"),
    ("79", "Tas minst 1 time før eller 2 timer etter måltid"),
    ("104", "Tas stående"),
)
_LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "A": (
        ("210", "MOT SURE OPPSTØT"),
        ("215", "MOT KVALME"),
        ("220", "VED DIABETES"),
        ("225", "MOT FORSTOPPELSE"),
        ("120", "HORMONTILSKUDD"),
    ),
    "B": (("230", "BLODFORTYNNENDE"), ("235", "MOT BLODMANGEL")),
    "C": (
        ("50", "MOT HØYT BLODTRYKK"),
        ("60", "BLODTRYKKSMEDISIN"),
        ("110", "HJERTEMEDISIN"),
        ("495", "MOT HJERTESVIKT"),
        ("240", "KOLESTEROLSENKENDE"),
        ("245", "VANNDRIVENDE"),
    ),
    "D": (("503", "MOT HUDINFEKSJON"), ("250", "MOT EKSEM"), ("255", "MOT KLØE")),
    "G": (
        ("480", "MOT HETETOKTER"),
        ("120", "HORMONTILSKUDD"),
        ("840", "MOT URINVEISINFEKSJON"),
        ("265", "VED VANNLATINGSPROBLEMER"),
    ),
    "H": (("120", "HORMONTILSKUDD"), ("270", "MOT BETENNELSE")),
    "J": (
        ("530", "MOT INFEKSJON"),
        ("310", "MOT BRONKITT"),
        ("585", "MOT LUFTVEISINFEKSJON"),
        ("260", "MOT BIHULEBETENNELSE"),
        ("860", "MOT ØREBETENNELSE"),
        ("840", "MOT URINVEISINFEKSJON"),
        ("1152", "TIL INJEKSJON"),
    ),
    "L": (("1198", "VED TRANSPLANTASJON"), ("275", "MOT KREFT"), ("1152", "TIL INJEKSJON")),
    "M": (("280", "MOT SMERTER OG BETENNELSE"), ("285", "MOT GIKT"), ("290", "MOT STIVHET")),
    "N": (
        ("330", "MOT DEPRESJON"),
        ("905", "NERVEMEDISIN"),
        ("295", "MOT SMERTER"),
        ("300", "MOT MIGRENE"),
        ("305", "MOT EPILEPSI"),
        ("315", "MOT SØVNLØSHET"),
        ("320", "MOT ANGST"),
    ),
    "R": (("325", "MOT ASTMA"), ("335", "MOT ALLERGI"), ("340", "MOT HOSTE")),
    "S": (("860", "MOT ØREBETENNELSE"), ("345", "MOT KLØE I ØRET")),
    "V": (("1152", "TIL INJEKSJON"), ("350", "TIL UNDERSØKELSE")),
}
# Reimbursement codes (ICPC-2 7170, ICD-10 7110, DMP ICPC 7434) per ATC level-1 group.
_DIAGNOSES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "A": (
        ("7170", "T90", "Diabetes type 2"),
        ("7110", "E11", "Diabetes mellitus type 2"),
        ("7170", "T89", "Diabetes type 1"),
        ("7110", "E10", "Diabetes mellitus type 1"),
        ("7170", "D84", "Øsofagussykdom"),
        ("7110", "K21", "Gastroøsofageal reflukssykdom"),
        ("7110", "K50", "Crohns sykdom"),
        ("7110", "K51", "Ulcerøs kolitt"),
    ),
    "B": (
        ("7170", "K93", "Lungeemboli"),
        ("7110", "I26", "Lungeemboli"),
        ("7170", "K78", "Atrieflimmer/flutter"),
        ("7110", "I48", "Atrieflimmer og atrieflutter"),
        ("7170", "B80", "Jernmangelanemi"),
        ("7110", "D50", "Jernmangelanemi"),
    ),
    "C": (
        ("7170", "K86", "Hypertensjon ukomplisert"),
        ("7170", "K87", "Hypertensjon med komplikasjoner"),
        ("7170", "K74", "Iskemisk hjertesykdom med angina"),
        ("7170", "K77", "Hjertesvikt"),
        ("7110", "I10", "Essensiell (primær) hypertensjon"),
        ("7110", "I50", "Hjertesvikt"),
        ("7110", "I25", "Kronisk iskemisk hjertesykdom"),
        ("7170", "T93", "Lipidforstyrrelse"),
        ("7110", "E78", "Forstyrrelser i lipoproteinmetabolismen"),
    ),
    "D": (
        ("7170", "S91", "Psoriasis"),
        ("7110", "L40", "Psoriasis"),
        ("7170", "S87", "Atopisk eksem"),
        ("7110", "L20", "Atopisk eksem"),
        ("7170", "S96", "Akne"),
        ("7110", "L70", "Akne"),
    ),
    "G": (
        ("7170", "Y85", "Benign prostatahypertrofi"),
        ("7110", "N40", "Prostatahyperplasi"),
        ("7170", "X11", "Menopausesymptomer/plager"),
        ("7110", "N95", "Menopausale og andre perimenopausale forstyrrelser"),
    ),
    "H": (
        ("7170", "T86", "Hypotyreose/myksødem"),
        ("7110", "E03", "Annen hypotyreose"),
        ("7170", "T85", "Hypertyreose/tyreotoksikose"),
        ("7110", "E05", "Tyreotoksikose"),
        ("7110", "E23", "Hypofunksjon og andre forstyrrelser i hypofysen"),
    ),
    "J": (
        ("7434", "-90", "Palliativ behandling i livets sluttfase"),
        ("7170", "A78", "Infeksjonssykdom IKA"),
        ("7110", "B20", "HIV-sykdom"),
        ("7110", "B18", "Kronisk virushepatitt"),
        ("7110", "A15", "Respiratorisk tuberkulose"),
    ),
    "L": (
        ("7434", "-51", "Organtransplantasjon"),
        ("7110", "Z94", "Status etter transplantert organ og vev"),
        ("7434", "-90", "Palliativ behandling i livets sluttfase"),
        ("7110", "D84", "Annen immunsvikt"),
        ("7110", "C50", "Ondartet svulst i brystkjertel"),
        ("7110", "C61", "Ondartet svulst i blærehalskjertel"),
        ("7110", "M05", "Seropositiv reumatoid artritt"),
        ("7110", "K50", "Crohns sykdom"),
    ),
    "M": (
        ("7170", "L88", "Reumatoid artritt"),
        ("7110", "M05", "Seropositiv reumatoid artritt"),
        ("7170", "L95", "Osteoporose"),
        ("7110", "M81", "Osteoporose uten patologisk brudd"),
        ("7170", "T92", "Urinsyregikt"),
        ("7110", "M10", "Urinsyregikt"),
    ),
    "N": (
        ("7170", "P76", "Depressiv lidelse"),
        ("7170", "N88", "Epilepsi"),
        ("7170", "N89", "Migrene"),
        ("7110", "F32", "Depressiv episode"),
        ("7110", "G40", "Epilepsi"),
        ("7110", "G20", "Parkinsons sykdom"),
        ("7170", "N87", "Parkinsonisme"),
        ("7170", "P72", "Schizofreni"),
        ("7110", "F20", "Schizofreni"),
        ("7110", "G43", "Migrene"),
    ),
    "R": (
        ("7170", "R96", "Astma"),
        ("7170", "R95", "Kronisk obstruktiv lungesykdom"),
        ("7110", "J45", "Astma"),
        ("7110", "J44", "Annen kronisk obstruktiv lungesykdom"),
        ("7170", "R97", "Allergisk rinitt"),
        ("7110", "J30", "Vasomotorisk og allergisk rhinitt"),
    ),
    "S": (
        ("7170", "H71", "Akutt mellomørebetennelse"),
        ("7110", "H60", "Otitis externa"),
        ("7110", "H66", "Purulent og uspesifisert mellomørebetennelse"),
    ),
    "V": (
        ("7434", "-90", "Palliativ behandling i livets sluttfase"),
        ("7110", "E83", "Forstyrrelser i mineralmetabolismen"),
    ),
}
_SPECIALTIES = (
    ("3", "Barnesykdommer"),
    ("16", "Hud og veneriske sykdommer"),
    ("41", "Revmatologi"),
    ("190", "Indremedisin"),
    ("37", "Nevrologi"),
)
# A small real subset of 7403 Produktgruppe: 3-digit group, 5-digit subgroups, 7-digit codes.
_PRODUCT_GROUPS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "501",
        "Forbruksmateriell ved inkontinens",
        "MedForbMatr",
        (
            ("50111", "5011101", "Bleier lett"),
            ("50111", "5011102", "Bleier middels"),
            ("50111", "5011103", "Bleier tung"),
            ("50106", "5010602", "Uridomer selvklebende"),
        ),
    ),
    (
        "502",
        "Forbruksmateriell ved urinretensjon",
        "MedForbMatr",
        (
            ("50201", "5020109", "Tappekateter - Fuktede hydrofile"),
            ("50201", "5020110", "Tappekateter - Hydrofile"),
        ),
    ),
    (
        "504",
        "Forbruksmateriell ved diabetes",
        "MedForbMatr",
        (
            ("50401", "5040101", "Blodsukkertester"),
            ("50405", "5040501", "Lansetter for stikkeapparat"),
            ("50406", "5040601", "Nåler til insulinpenner"),
            ("50403", "5040301", "Insulinpenner"),
        ),
    ),
    (
        "505",
        "Forbruksmateriell ved stomi",
        "MedForbMatr",
        (
            ("50525", "5052501", "Poser med plate - Lukket - Flat"),
            ("50525", "5052503", "Poser med plate - Tømbar - Flat"),
            ("50526", "5052601", "Plater - Ringkobling - Flat"),
        ),
    ),
    (
        "513",
        "Forbruksmateriell ved epidermolysis bullosa",
        "MedForbMatr",
        (("51301", "5130101", "Skumbandasjer"), ("51301", "5130104", "Hydrofiberbandasjer")),
    ),
    (
        "601",
        "Næringsmidler ved diverse tilstander",
        "Naringsmiddel",
        (("60101", "6010101", "Næringsdrikker"), ("60104", "6010401", "Sondenæring")),
    ),
    (
        "602",
        "Næringsmidler ved melkeproteinallergi med mer",
        "Naringsmiddel",
        (("60206", "6020601", "Melkeerstatninger - hydrolysert melkeprotein"),),
    ),
    (
        "604",
        "Næringsmidler ved kreft/immunsvikt/sykdom som krever næringstilskudd",
        "Naringsmiddel",
        (("60401", "6040101", "Næringsdrikker"),),
    ),
    (
        "900",
        "Brystproteser",
        "Brystprotese",
        (("90004", "9000401", "Interim/vattprotese"), ("90002", "9000201", "Brystvorter")),
    ),
)
_SUBGROUP_NAMES = {
    "50111": "Bleier",
    "50106": "Uridomer og festeutstyr",
    "50201": "Kateter",
    "50401": "Blodsukkertester",
    "50405": "Lansetter for stikkeapparat",
    "50406": "Nåler til insulinpenner",
    "50403": "Insulinpenner",
    "50525": "Endelt - Poser med plate",
    "50526": "Todelt - Plater",
    "51301": "Bandasjer",
    "60101": "Næringsdrikker",
    "60104": "Sondenæring",
    "60206": "Melkeerstatninger",
    "60401": "Næringsdrikker",
    "90004": "Interim/vattprotese",
    "90002": "Brystvorter",
}
_SUPPLIERS = (
    ("Helsemateriell Norge AS", "Industriveien 12, 2020 Skedsmokorset", "64 83 20 00"),
    ("Medisera AS", "Postboks 114, 1371 Asker", "66 90 12 30"),
    ("Nutrino Nordic AS", "Strandveien 50, 1366 Lysaker", "67 11 45 00"),
    ("Stomicare & Co AS", "Brynsveien 5, 0667 Oslo", "22 07 88 10"),
    ("Diabeta Norge AS", "Sandakerveien 24, 0473 Oslo", "23 40 55 60"),
)

# Interaction text building blocks.
_ENZYMES = ("CYP3A4", "CYP2D6", "CYP2C9", "CYP2C19", "CYP1A2", "P-glykoprotein (P-gp)", "OATP1B1")
_JOURNALS = (
    "Clin Pharmacol Ther",
    "Eur J Clin Pharmacol",
    "Br J Clin Pharmacol",
    "J Clin Pharmacol",
    "Drug Metab Dispos",
    "Ther Drug Monit",
    "Clin Pharmacokinet",
    "Tidsskr Nor Legeforen",
    "Ann Pharmacother",
    "Pharmacotherapy",
)
_SURNAMES = (
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Berg",
    "Haugen",
    "Bakken",
    "Lie",
    "Dahl",
    "Smith",
    "Brown",
    "Miller",
    "Schmidt",
    "Müller",
    "Nguyen",
    "Kim",
    "Rossi",
    "Lindqvist",
    "Virtanen",
)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Atc:
    code: str
    name: str
    children: list[_Atc] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Substance:
    """A Virkestoff entry: a therapeutic moiety, a salt, or a herbal substance."""

    id: str
    name: str
    name_en: str
    atc: _Atc | None = None
    salts: list[_Substance] = field(default_factory=list)
    combo_codes: list[_Atc] = field(default_factory=list)
    strengths: list[_Strength] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Strength:
    """A VirkestoffMedStyrke entry."""

    id: str
    substance: _Substance
    value: float
    unit: str
    denom: tuple[float, str] | None
    kombi: _Atc | None
    upper: float | None


@dataclass(slots=True, eq=False)
class _Admin:
    """AdministreringLegemiddel content shared by a family's brands."""

    routes: list[tuple[str, str]]
    labels: list[tuple[str, str]]
    kortdoser: list[_Kortdose]
    precautions: list[tuple[str, str]]
    knuses: tuple[str, str] | None = None
    apnes: tuple[str, str] | None = None
    deling: tuple[str, str] | None = None
    bolus: tuple[str, str] | None = None


@dataclass(slots=True, eq=False)
class _Family:
    """Products sharing substance(s), ATC code and form; the brands differ."""

    atc: _Atc | None
    l1: str
    l2_name: str
    form: _Form
    long_name: str
    substances: list[_Substance]
    brands: list[tuple[str, str]]  # (Varenavn, Produsent); index 0 is the originator
    reseptgruppe: str
    preparattype: tuple[str, str]
    admin: _Admin
    black_triangle: bool
    vilkar: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Slot:
    """One strength (a strength tuple for combinations) of a family, sold by 1-8 brands."""

    family: _Family
    strengths: list[_Strength]
    brand_count: int
    products: list[_Product] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Product:
    """A LegemiddelMerkevare entry."""

    id: str
    slot: _Slot
    varenavn: str
    produsent: str
    referanse: str | None
    nfs: str
    packages: list[_Package] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Byttegruppe:
    id: str
    kode: str
    slot: _Slot
    since: str


@dataclass(slots=True, eq=False)
class _RefGroup:
    """A Refusjonsgruppe (drug groups carry an ATC code, commodity groups a 7403 code)."""

    id: str
    gruppe_nr: str
    gruppe_dn: str
    atc: _Atc | None
    l1: str
    since: str


@dataclass(slots=True, eq=False)
class _Package:
    """A Legemiddelpakning entry."""

    id: str
    product: _Product
    varenr: str
    size: int
    pack_type: tuple[str, str]
    byttegruppe: _Byttegruppe | None = None
    refusjon: _RefGroup | None = None


@dataclass(slots=True, eq=False)
class _Hjemmel:
    """A Refusjonshjemmel entry with its Refusjonsgrupper."""

    code: str
    dn: str
    varekobling: bool
    vedtak: bool
    groups: list[_RefGroup]


# StrukturertVilkar: ((Type code, Type DN), VerdiTekst values, VerdiKodet (system, code, DN)).
_Structured = tuple[tuple[str, str], list[str], list[tuple[str, str, str]]]


@dataclass(slots=True, eq=False)
class _Vilkar:
    id: str
    nr: str
    gruppe: tuple[str, str]
    gjelder: tuple[str, str]
    text: str
    since: str
    structured: list[_Structured]


@dataclass(slots=True, eq=False)
class _Dose:
    id: str
    lmr: str
    product: _Product
    packages: list[_Package]


@dataclass(frozen=True, slots=True)
class _Kortdose:
    code: str
    dn: str
    template: str
    phases: tuple[tuple[float, int | None], ...]  # (amount per day, number of days or None)


@dataclass(slots=True, eq=False)
class _Unit:
    """One side of an interaction: a Substansgruppe."""

    name: str | None
    members: list[tuple[str, _Atc | None, str | None]]  # (Substans, Atc, RefVirkestoff)
    display: str
    display_en: str


@dataclass(slots=True, eq=False)
class _Catalogue:
    """Everything except interactions, notices and commodities, which are streamed."""

    tree: list[_Atc]
    moieties: list[_Substance]
    unmarketed: list[_Substance]
    herbals: list[_Substance]
    families: list[_Family]
    slots: list[_Slot]
    products: list[_Product]
    packages: list[_Package]
    byttegrupper: list[_Byttegruppe]
    lv_slots: list[tuple[str, _Slot]]
    doses: list[_Dose]
    vilkar: list[_Vilkar]
    hjemler: list[_Hjemmel]
    commodity_groups: list[tuple[str, list[_RefGroup]]]  # (payload element, groups)
    kortdoser: list[_Kortdose]
    structured_kortdoser: int


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return _esc(text).replace('"', "&quot;")


def _num(value: float) -> str:
    """Decimal without exponent or trailing zeros (valid as xs:decimal and xs:double)."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _komma(value: float) -> str:
    return _num(value).replace(".", ",")


def _money(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _ean(varenr: str) -> str:
    body = "704626" + varenr
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _english(name: str) -> str:
    text = name.replace("ks", "x").replace("k", "c").replace("K", "C")
    return text + "e" if text.endswith(("in", "ol", "id", "at", "on")) else text


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:]


def _split(rng: Random, total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` positive integers (requires total >= parts)."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    edges = [0, *cuts, total]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def _weighted(rng: Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


class _Gen:
    """Random source plus id, date and name factories shared by all builders and writers."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng = Random(seed)
        self.scale = scale
        self.hentet = datetime(2026, 11, 1, 3, 0, 0) + timedelta(minutes=seed % 525600)
        self._today = self.hentet.date().toordinal()
        self._names: set[str] = set()
        self._numbers: set[int] = set()

    def count(self, key: str) -> int:
        return max(_MIN_COUNT, round(_BASE_COUNTS[key] * self.scale))

    def id(self) -> str:
        h = f"{self.rng.getrandbits(128):032X}"
        variant = "89AB"[int(h[16], 16) & 3]
        return f"ID_{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def stamp(self) -> str:
        """An entry Tidspunkt from about 2009 up to the extract time, mostly recent."""
        rng = self.rng
        days = int(6500 * (1.0 - max(rng.random(), rng.random())))
        day = date.fromordinal(self._today - 1 - days).isoformat()
        return f"{day}T0{rng.randint(0, 3)}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"

    def day(self, first_year: int, ahead_days: int = 0) -> str:
        start = date(first_year, 1, 1).toordinal()
        return date.fromordinal(self.rng.randint(start, self._today + ahead_days)).isoformat()

    def recent_day(self, back_days: int, ahead_days: int = 0) -> str:
        ordinal = self.rng.randint(self._today - back_days, self._today + ahead_days)
        return date.fromordinal(ordinal).isoformat()

    def unique_number(self, low: int, high: int) -> int:
        while True:
            n = self.rng.randint(low, high)
            if n not in self._numbers:
                self._numbers.add(n)
                return n

    def unique_name(self, make: Callable[[], str]) -> str:
        while True:
            name = make()
            if name not in self._names:
                self._names.add(name)
                return name

    def stem(self) -> str:
        parts = self.rng.choices(_SYLLABLES, k=3 if self.rng.random() < 0.25 else 2)
        return "".join(parts).capitalize()

    def substance_name(self, suffix: str) -> str:
        def make() -> str:
            stem = self.stem()
            return (stem[:-1] if suffix[0] in "aeiouy" else stem) + suffix

        return self.unique_name(make)

    def brand_name(self) -> str:
        return self.unique_name(lambda: self.stem() + self.rng.choice(_BRAND_ENDINGS))


# --------------------------------------------------------------------------------------------
# Building the catalogue model
# --------------------------------------------------------------------------------------------


def _build_atc(gen: _Gen, n_codes: int) -> list[_Atc]:
    """Level 1-5 tree with about ``n_codes`` level-5 substances, weighted per anatomical group."""
    rng = gen.rng
    total_weight = sum(w for _, _, w in _L1)
    tree = []
    for letter, name, weight in _L1:
        node = _Atc(letter, name)
        k5 = max(1, round(n_codes * weight / total_weight))
        names = _L2_NAMES[letter]
        n2 = min(len(names), max(1, round(k5 / 100)), k5)
        numbers = sorted(rng.sample(range(1, 40), n2))
        for idx, share in enumerate(_split(rng, k5, n2)):
            code = f"{letter}{numbers[idx]:02d}"
            node.children.append(_build_l2(gen, code, names[idx], share, letter))
        tree.append(node)
    return tree


def _build_l2(gen: _Gen, code: str, name: str, k5: int, l1: str) -> _Atc:
    rng = gen.rng
    node = _Atc(code, name)
    n3 = min(max(1, round(k5 / 20)), k5, 20)
    for i, share in enumerate(_split(rng, k5, n3)):
        l3 = _Atc(f"{code}{chr(65 + i)}", f"{name}, {_L3_QUALIFIERS[i % len(_L3_QUALIFIERS)]}")
        n4 = min(max(1, round(share / 5)), share, 20)
        for j, count in enumerate(_split(rng, share, n4)):
            others = j == n4 - 1 and n4 >= 3
            letter = "X" if others else chr(65 + j)
            l4_name = (
                f"Andre {_lower_first(name)}" if others else f"{rng.choice(_L4_CHEMISTRY)}derivater"
            )
            l4 = _Atc(f"{l3.code}{letter}", l4_name)
            suffix = rng.choice(_SUFFIXES[l1])
            number = 0
            for _ in range(min(count, 45)):
                number += 2 if rng.random() < 0.1 else 1
                l4.children.append(_Atc(f"{l4.code}{number:02d}", gen.substance_name(suffix)))
            l3.children.append(l4)
        node.children.append(l3)
    return node


def _walk(tree: list[_Atc]) -> Iterator[tuple[_Atc, _Atc, _Atc, _Atc, _Atc]]:
    """Every level-5 code with its ancestors (level 1 to 4)."""
    for l1 in tree:
        for l2 in l1.children:
            for l3 in l2.children:
                for l4 in l3.children:
                    for l5 in l4.children:
                        yield l1, l2, l3, l4, l5


def _plan_slots(
    gen: _Gen, n_mv: int, n_vms: int, n_bg: int, n_herbal: int
) -> tuple[list[list[int]], list[tuple[int, list[int]]]]:
    """Brand counts per strength chosen so Merkevare and VMS counts hit their targets.

    Returns the single-substance families (brand count per strength) and the combination
    families (number of components, brand count per strength). About 8 % of brands are
    combinations; slightly more than ``n_bg`` single-substance strengths get 2+ brands so
    that they can form substitution groups.
    """
    rng = gen.rng
    n_combo_mv = max(1, round(0.08 * n_mv))
    n_mono_mv = max(1, n_mv - n_herbal - n_combo_mv)
    combos: list[tuple[int, list[int]]] = []
    combo_mv = combo_vms = 0
    while combo_mv < n_combo_mv:
        k = 2 if rng.random() < 0.75 else 3
        brands = [1 if rng.random() < 0.75 else 2 for _ in range(1 if rng.random() < 0.7 else 2)]
        while combo_mv + sum(brands) > n_combo_mv:
            brands[-1] -= 1
            if brands[-1] == 0:
                brands.pop()
        combos.append((k, brands))
        combo_mv += sum(brands)
        combo_vms += k * len(brands)
    # Keep at least one spare brand so even tiny catalogues get a substitution group.
    n_slots = min(max(1, n_vms - combo_vms), max(1, n_mono_mv - 1))
    counts = [1] * n_slots
    extras = n_mono_mv - n_slots
    multi = rng.sample(range(n_slots), min(n_slots, extras, round(1.02 * n_bg) + 1))
    for i in multi:
        counts[i] = 2
    extras -= len(multi)
    popular = multi[: max(1, len(multi) // 5)]
    while extras > 0:
        open_slots = [j for j in (popular if rng.random() < 0.5 else multi) if counts[j] < 8]
        if not open_slots:
            singles = [j for j in range(n_slots) if counts[j] == 1]
            if not singles:
                break
            multi.append(rng.choice(singles))
            continue
        counts[rng.choice(open_slots)] += 1
        extras -= 1
    rng.shuffle(counts)
    families: list[list[int]] = []
    pos = 0
    while pos < n_slots:
        size = rng.choices((1, 2, 3, 4), weights=(45, 30, 17, 8))[0]
        families.append(counts[pos : pos + size])
        pos += size
    return families, combos


_COMMON_KORTDOSER = frozenset(
    (
        "1 daglig",
        "1x2",
        "1x3",
        "1x4",
        "2x2",
        "2x3",
        "1+0+0",
        "0+0+1",
        "1+0+1",
        "1+1+1",
        "1+1+1+1",
        "2+0+0",
        "1+1+0",
        "1x1x7",
        "1x1x10",
        "2x1x3$1x1",
    )
)


def _kortdose_table(needed: int) -> tuple[list[_Kortdose], int]:
    """Short-dose codes (7478): free-text codes first, then at least ``needed`` structured."""

    def when(values: tuple[float, ...]) -> str:
        times = ("morgen", "middag", "kveld", "natt")
        parts = [
            f"{_komma(v)} {'<dose>' if v <= 1 else '<doser>'} {t}"
            for v, t in zip(values, times, strict=False)
            if v
        ]
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} og {parts[-1]}"

    def dose(n: float) -> str:
        return "<dose>" if n <= 1 else "<doser>"

    families: list[list[tuple[str, str, tuple[tuple[float, int | None], ...]]]] = [
        [("1 daglig", "1 <dose> daglig", ((1, None),))],
        [
            (f"{n}x{m}", f"{n} {dose(n)} {m} ganger daglig", ((n * m, None),))
            for n in (1, 2)
            for m in (2, 3, 4)
        ],
        [
            ("+".join(_komma(v) for v in vals), when(vals), ((sum(vals), None),))
            for vals in cartesian((0, 1, 2), repeat=3)
            if any(vals)
        ],
        [
            (f"{n}x1x{d}", f"{n} {dose(n)} 1 gang daglig i {d} dager", ((n, d),))
            for n in (1, 2)
            for d in (3, 5, 7, 10, 14)
        ],
        [
            ("+".join(_komma(v) for v in vals), when(vals), ((sum(vals), None),))
            for vals in cartesian((0, 1, 2), repeat=4)
            if any(vals) and vals[3]
        ],
        [
            (
                f"{a}x1x{d}${b}x1",
                f"{a} <doser> 1 gang daglig i {d} dager deretter {b} {dose(b)} daglig",
                ((a, d), (b, None)),
            )
            for a, b in ((2, 1), (3, 2), (4, 2))
            for d in (2, 3, 5)
        ],
        [
            ("+".join(_komma(v) for v in vals), when(vals), ((sum(vals), None),))
            for vals in cartesian((0, 0.5, 1, 2), repeat=3)
            if 0.5 in vals
        ],
        [
            ("+".join(_komma(v) for v in vals), when(vals), ((sum(vals), None),))
            for vals in cartesian((0, 0.5, 1, 2), repeat=4)
            if 0.5 in vals and vals[3]
        ],
    ]
    ordered = [item for group in zip_longest(*families) for item in group if item]
    specials = [
        _Kortdose("5500", "Følg vedlagte bruksanvisning", "Følg vedlagte bruksanvisning", ()),
        _Kortdose("5501", "Etter behov", "1 <dose> ved behov", ()),
        _Kortdose("5502", "Som avtalt med lege", "Brukes som avtalt med lege", ()),
    ]
    structured = [
        _Kortdose(str(5503 + i), dn, template, phases)
        for i, (dn, template, phases) in enumerate(ordered)
    ]
    return specials + structured, min(needed, len(structured))


def _admin(gen: _Gen, l1: str, form: _Form, kortdoser: list[_Kortdose]) -> _Admin:
    """``kortdoser`` starts with the free-text code for non-oral forms, then common oral
    patterns."""
    rng = gen.rng
    routes = (
        [form.routes[0]]
        if len(form.routes) == 1 or rng.random() < 0.6
        else rng.sample(form.routes, 2)
    )
    labels = rng.sample(_LABELS[l1], min(len(_LABELS[l1]), rng.randint(0, 3)))
    oral = form.routes[0][0] == "53"
    if oral:
        chosen = rng.sample(kortdoser[1:], min(len(kortdoser) - 1, rng.choice((0, 1, 1, 2, 3))))
    else:
        chosen = [kortdoser[0]] if rng.random() < 0.5 else []
    precautions = rng.sample(_ADMIN_PRECAUTIONS, rng.choice((0, 0, 1, 1, 2))) if oral else []
    admin = _Admin(routes, labels, chosen, precautions)
    if form.kind == "solid":
        yes_no = (("9", "Ukjent"), ("2", "Nei"), ("1", "Ja"))
        admin.knuses = rng.choice(yes_no) if rng.random() < 0.5 else None
        if form.dose_unit == "kapsel" and rng.random() < 0.4:
            admin.apnes = rng.choice(yes_no)
        if form.dose_unit == "tablett" and rng.random() < 0.45:
            admin.deling = rng.choice(
                (("0", "Ikke spesifisert"), ("1", "Ikke delbar"), ("2", "Delbar i 2"))
            )
    elif form.kind == "inj" and rng.random() < 0.2:
        admin.bolus = ("0", "Skal ikke gis som bolus")
    return admin


def _reseptgruppe(gen: _Gen, l2_name: str, form: _Form) -> str:
    roll = gen.rng.random()
    if l2_name == "Analgetika" and roll < 0.35:
        return "A"
    if l2_name in ("Psykoleptika", "Antiepileptika") and roll < 0.4:
        return "B"
    if form.kind in ("semi", "solid") and roll < 0.07:
        return "CF" if roll < 0.035 else "F"
    return "C"


def _preparattype(gen: _Gen, l2_name: str, form: _Form) -> tuple[str, str]:
    roll = gen.rng.random()
    if l2_name == "Vaksiner":
        return ("6", "Vaksine")
    if form.code == "460" and roll < 0.3:
        return ("15", "Sykehuspreparat")
    if roll < 0.03:
        return ("11", "Krever godkj. fritak")
    return ("7", "Legemiddel")


def _new_family(
    gen: _Gen,
    substances: list[_Substance],
    atc: _Atc | None,
    l1: str,
    l2_name: str,
    form: _Form,
    n_brands: int,
    kortdoser: list[_Kortdose],
) -> _Family:
    rng = gen.rng
    originator = gen.brand_name()
    companies = rng.sample(_COMPANIES, min(len(_COMPANIES), n_brands))
    brands = [(originator, companies[0])]
    base = originator if len(substances) > 1 else substances[0].name
    brands += [(f"{base} {company.split()[0]}", company) for company in companies[1:]]
    return _Family(
        atc,
        l1,
        l2_name,
        form,
        rng.choice(form.long_names),
        substances,
        brands,
        _reseptgruppe(gen, l2_name, form),
        _preparattype(gen, l2_name, form),
        _admin(gen, l1, form, kortdoser),
        rng.random() < 0.04,
    )


def _strength_ladder(
    gen: _Gen, form: _Form
) -> tuple[str, tuple[float, str] | None, tuple[float, ...]]:
    """Unit, denominator and the ladder of typical values for a family's strengths."""
    rng = gen.rng
    if form.kind == "patch":
        return "mcg", (24, "timer"), _MASS_VALUES["mcg"]
    if form.kind == "semi":
        return "mg", (1, "g"), _CONC_VALUES
    if form.kind == "inhal":
        return "mcg", (1, "dose"), _MASS_VALUES["mcg"]
    if form.kind in ("inj", "liquid"):
        if rng.random() < 0.1:
            return "IE", (1, "ml"), _MASS_VALUES["IE"]
        return (
            "mg",
            (5, "ml") if form.kind == "liquid" and rng.random() < 0.3 else (1, "ml"),
            _CONC_VALUES,
        )
    unit = rng.choices(("mg", "mcg", "g", "IE"), weights=(82, 11, 3, 4))[0]
    return unit, None, _MASS_VALUES[unit]


def _make_strengths(
    gen: _Gen, substance: _Substance, form: _Form, n: int, combo: bool
) -> list[_Strength]:
    rng = gen.rng
    unit, denom, ladder = _strength_ladder(gen, form)
    start = rng.randint(0, max(0, len(ladder) - n))
    result = []
    for i in range(n):
        overflow = max(0, start + i - len(ladder) + 1)  # past the top: 2x, 3x the top value
        value = ladder[min(start + i, len(ladder) - 1)] * (1 + overflow)
        upper = value * 1.2 if unit == "IE" and rng.random() < 0.05 else None
        strength = _Strength(
            gen.id(), substance, value, unit, denom, substance.atc if combo else None, upper
        )
        substance.strengths.append(strength)
        result.append(strength)
    return result


def _strength_text(strengths: list[_Strength]) -> str:
    parts = []
    for s in strengths:
        text = f"{_komma(s.value)} {s.unit}"
        if s.denom is not None:
            n, unit = s.denom
            text += f"/{unit}" if n == 1 else f"/{_komma(n)} {unit}"
        parts.append(text)
    return "/".join(parts)


def _add_slot(
    gen: _Gen, family: _Family, strengths: list[_Strength], n_brands: int, slots: list[_Slot]
) -> None:
    slot = _Slot(family, strengths, n_brands)
    n_generics = min(n_brands, len(family.brands)) - 1
    for b in [0, *sorted(gen.rng.sample(range(1, len(family.brands)), n_generics))]:
        varenavn, company = family.brands[b]
        nfs = f"{varenavn} {family.form.abbrev}"
        if strengths:
            nfs += f" {_strength_text(strengths)}"
        referanse = family.brands[0][0] if b else None
        slot.products.append(_Product(gen.id(), slot, varenavn, company, referanse, nfs))
    slots.append(slot)


def _build_products(
    gen: _Gen,
    tree: list[_Atc],
    mono: list[list[int]],
    combos: list[tuple[int, list[int]]],
    herbals: list[_Substance],
    kortdoser: list[_Kortdose],
) -> tuple[list[_Substance], list[_Substance], list[_Family], list[_Slot]]:
    """Substances, families and slots (with their brands) for single, combination and herbal
    products. Returns (moieties, unmarketed substances, families, slots)."""
    rng = gen.rng
    walk = list(_walk(tree))
    rng.shuffle(walk)
    l2_name = {l5.code: l2.name for _, l2, _, _, l5 in walk}
    l4_of = {l5.code: l4 for _, _, _, l4, l5 in walk}
    moieties: list[_Substance] = []
    forms_of: dict[int, set[str]] = {}
    families: list[_Family] = []
    slots: list[_Slot] = []
    used = 0
    for brand_counts in mono:
        substance, form_key = _reuse_moiety(gen, moieties, forms_of, used == len(walk))
        if substance is None:
            l5 = walk[used][4]
            used += 1
            substance = _Substance(gen.id(), l5.name, _english(l5.name), l5)
            moieties.append(substance)
            form_key = _weighted(rng, _FORM_WEIGHTS[l5.code[0]])
        forms_of.setdefault(id(substance), set()).add(form_key)
        atc = substance.atc
        form = _FORMS[form_key]
        family = _new_family(
            gen,
            [substance],
            atc,
            atc.code[0],
            l2_name[atc.code],
            form,
            max(brand_counts),
            kortdoser,
        )
        families.append(family)
        strengths = _make_strengths(gen, substance, form, len(brand_counts), False)
        for n_brands, strength in zip(brand_counts, strengths, strict=True):
            _add_slot(gen, family, [strength], n_brands, slots)
    unmarketed = [_Substance(gen.id(), w[4].name, _english(w[4].name), w[4]) for w in walk[used:]]
    for k, brand_counts in combos:
        first = rng.choice(moieties)
        pool = [m for m in moieties if m.atc.code[0] == first.atc.code[0] and m is not first]
        if len(pool) < k - 1:
            pool = [m for m in moieties if m is not first]
        parts = [first, *rng.sample(pool, min(k - 1, len(pool)))]
        atc = _combo_code(parts, l4_of[first.atc.code])
        l1 = atc.code[0]
        form = _FORMS[_weighted(rng, _FORM_WEIGHTS[l1])]
        family = _new_family(
            gen, parts, atc, l1, l2_name[first.atc.code], form, max(brand_counts), kortdoser
        )
        families.append(family)
        per_part = [_make_strengths(gen, p, form, len(brand_counts), True) for p in parts]
        for i, n_brands in enumerate(brand_counts):
            _add_slot(gen, family, [s[i] for s in per_part], n_brands, slots)
    for herbal in herbals:
        form = _FORMS["tab" if rng.random() < 0.6 else "kaps"]
        family = _new_family(gen, [herbal], None, "N", "", form, 1, kortdoser)
        family.reseptgruppe = "F"
        family.preparattype = ("12", "Tradisjonelt plantebasert legemiddel")
        families.append(family)
        _add_slot(gen, family, [], 1, slots)
    return moieties, unmarketed, families, slots


def _reuse_moiety(
    gen: _Gen, moieties: list[_Substance], forms_of: dict[int, set[str]], must: bool
) -> tuple[_Substance | None, str]:
    """Now and then (or when no new ATC code is left) sell an existing substance in another
    form, e.g. an injection next to the tablets; returns (substance or None, form key)."""
    rng = gen.rng
    if moieties and (must or rng.random() < 0.12):
        candidate = rng.choice(moieties)
        free = tuple(
            (f, wt)
            for f, wt in _FORM_WEIGHTS[candidate.atc.code[0]]
            if f not in forms_of[id(candidate)]
        )
        if free:
            return candidate, _weighted(rng, free)
    return None, ""


def _combo_code(parts: list[_Substance], l4: _Atc) -> _Atc:
    """A new level-5 code numbered from 51 in the first component's level-4 group."""
    number = max([50, *(int(c.code[-2:]) for c in l4.children)]) + 1
    names = [parts[0].name, *(p.name.lower() for p in parts[1:])]
    name = " og ".join(names) if len(names) == 2 else f"{', '.join(names[:-1])} og {names[-1]}"
    node = _Atc(f"{l4.code}{number:02d}", name)
    l4.children.append(node)
    for p in parts:
        p.combo_codes.append(node)
    return node


def _fill_substances(
    gen: _Gen, moieties: list[_Substance], unmarketed: list[_Substance], n_vs: int, n_fixed: int
) -> list[_Substance]:
    """Add salts to moieties and keep enough unmarketed substances to reach ``n_vs``.

    Returns the unmarketed substances that are written.
    """
    rng = gen.rng
    remaining = max(0, n_vs - n_fixed)
    n_unmarketed = min(len(unmarketed), remaining - round(remaining * 0.65))
    n_salts = min(remaining - n_unmarketed, len(moieties) * len(_SALTS))
    n_unmarketed = min(len(unmarketed), remaining - n_salts)
    added = 0
    while added < n_salts:
        moiety = rng.choice(moieties)
        taken = {s.name for s in moiety.salts}
        free = [s for s in _SALTS if moiety.name + s[0] not in taken]
        if free:
            salt, salt_en = rng.choice(free)
            moiety.salts.append(
                _Substance(gen.id(), moiety.name + salt, f"{moiety.name_en} {salt_en}")
            )
            added += 1
    return unmarketed[:n_unmarketed]


def _build_packages(gen: _Gen, slots: list[_Slot], n_pk: int) -> list[_Package]:
    """One package per product; extra pack sizes go mostly to multi-brand (generic) slots."""
    rng = gen.rng
    products = [p for s in slots for p in s.products]
    wanted = dict.fromkeys((id(p) for p in products), 1)
    generic = [p for p in products if p.slot.brand_count > 1] or products
    extras = max(0, n_pk - len(products))
    attempts = 0
    while extras and attempts < 20 * n_pk:
        attempts += 1
        owner = rng.choice(generic if rng.random() < 0.65 else products)
        if wanted[id(owner)] < min(4, len(owner.slot.family.form.sizes)):
            wanted[id(owner)] += 1
            extras -= 1
    packages = []
    for product in products:
        form = product.slot.family.form
        for size in sorted(rng.sample(form.sizes, wanted[id(product)])):
            varenr = f"{gen.unique_number(1, 599999):06d}"
            package = _Package(gen.id(), product, varenr, size, rng.choice(form.pack_types))
            product.packages.append(package)
            packages.append(package)
    return packages


def _build_byttegrupper(gen: _Gen, slots: list[_Slot], n_bg: int) -> list[_Byttegruppe]:
    """Substitution groups over the 2-8 packages of a multi-brand single-substance strength."""
    rng = gen.rng
    candidates = [s for s in slots if s.brand_count > 1 and len(s.strengths) == 1]
    chosen = sorted(rng.sample(range(len(candidates)), min(n_bg, len(candidates))))
    groups = []
    for index in chosen:
        slot = candidates[index]
        group = _Byttegruppe(gen.id(), f"{gen.unique_number(1, 99999):06d}", slot, gen.day(2005))
        for package in [pk for p in slot.products for pk in p.packages][:8]:
            package.byttegruppe = group
        groups.append(group)
    return groups


def _build_lv(gen: _Gen, slots: list[_Slot], n_lv: int) -> list[tuple[str, _Slot]]:
    """Generic prescription groups, preferring strengths sold by several brands."""
    rng = gen.rng
    eligible = [i for i, s in enumerate(slots) if s.strengths]
    preferred = [i for i in eligible if slots[i].brand_count > 1]
    rest = [i for i in eligible if slots[i].brand_count == 1]
    rng.shuffle(preferred)
    rng.shuffle(rest)
    return [(gen.id(), slots[i]) for i in sorted((preferred + rest)[:n_lv])]


def _build_doses(gen: _Gen, packages: list[_Package], n_dose: int) -> list[_Dose]:
    """One dose per package; some extra pack sizes share their product's first dose."""
    rng = gen.rng
    extra = [pk for pk in packages if pk is not pk.product.packages[0]]
    merged = set(map(id, rng.sample(extra, min(len(extra), max(0, len(packages) - n_dose)))))
    doses: list[_Dose] = []
    first: dict[int, _Dose] = {}
    for package in packages:
        owner = first.get(id(package.product))
        if id(package) in merged and owner is not None:
            owner.packages.append(package)
        elif len(doses) < n_dose:
            dose = _Dose(
                gen.id(), f"{gen.unique_number(1000000, 9999999)}", package.product, [package]
            )
            first.setdefault(id(package.product), dose)
            doses.append(dose)
    return doses


def _build_vilkar(gen: _Gen, n: int) -> list[_Vilkar]:
    """Conditions; the first five cover groups 4, 5, 6, 7 and 3 (no. 34 is group 4)."""
    rng = gen.rng
    groups = ["4", "5", "6", "7", "3"]
    groups += rng.choices(("3", "4", "5", "6", "7"), weights=(65, 10, 5, 10, 10), k=max(0, n - 5))
    result = []
    for i, group in enumerate(groups[:n]):
        nr = "34" if i == 0 else str(gen.unique_number(35, 900 + 5 * n))
        text, structured = _vilkar_text(gen, group, i == 0)
        gjelder = (("1", "Rekvirent"), ("2", "Utleverer"), ("3", "Rekvirent og utleverer"))
        result.append(
            _Vilkar(
                gen.id(),
                nr,
                (group, _VILKAR_GROUPS[group]),
                rng.choice(gjelder),
                text,
                gen.day(2008),
                structured,
            )
        )
    return result


_VILKAR_GROUPS = {
    "3": "Refusjon",
    "4": "Utleveringsbestemmelse",
    "5": "Antibiotika",
    "6": "Legemiddelgjennomgang",
    "7": "Førerkort",
}


def _vilkar_text(gen: _Gen, group: str, unregistered: bool) -> tuple[str, list[_Structured]]:
    """Condition text plus StrukturertVilkar as (Type, VerdiTekst list, VerdiKodet list)."""
    rng = gen.rng
    age_ge = ("1", "Alder lik eller større enn")
    if unregistered:
        return (
            "Legemidlet er ikke godkjent for markedsføring i Norge og er ikke vurdert av "
            "norske legemiddelmyndigheter. Det kreves godkjenningsfritak.",
            [],
        )
    if group == "4":
        return rng.choice(
            (
                ("Utleveres kun til sykehus eller etter rekvisisjon fra sykehusavdeling.", []),
                (
                    "Skal kun utleveres etter forskrivning fra lege med spesialistgodkjenning.",
                    [
                        (
                            ("10", "Forskrevet av spesialist eller sykehus"),
                            [],
                            [("7426", *rng.choice(_SPECIALTIES))],
                        )
                    ],
                ),
            )
        )
    if group == "5":
        return (
            "Antibiotikum. Følg nasjonale faglige retningslinjer for antibiotikabruk i "
            "primærhelsetjenesten, og vurder om behandling med smalspektret penicillin er "
            "tilstrekkelig.",
            [],
        )
    if group == "6":
        age = rng.choice((65, 70, 75, 80))
        return (
            f"Legemiddelgjennomgang: Vurder fortsatt behov for behandling hos pasienter "
            f"{age} år og eldre. Økt risiko for fall, forvirring og kognitiv svikt. Vurder "
            f"dosereduksjon eller seponering.",
            [(age_ge, [str(age)], [])],
        )
    if group == "7":
        return (
            "Førerkort: Legemidlet kan påvirke evnen til å kjøre bil og betjene maskiner. "
            "Se helsekravene i førerkortforskriften og Helsedirektoratets veileder med "
            "veiledende maksimale døgndoser for de ulike førerkortgruppene.",
            [],
        )
    spec_code, spec_name = rng.choice(_SPECIALTIES)
    specialist = ("10", "Forskrevet av spesialist eller sykehus")
    low = rng.choice((2, 6, 12))
    return rng.choice(
        (
            (
                "Refusjon ytes kun etter forskrivning av spesialist "
                f"i {_lower_first(spec_name)} eller "
                f"sykehusavdeling med tilsvarende spesialitet.",
                [(specialist, [], [("7426", spec_code, spec_name)])],
            ),
            (
                f"Refusjon ytes kun til barn og ungdom fra og med {low} år til og med 17 år.",
                [(age_ge, [str(low)], []), (("2", "Alder mindre enn"), ["18"], [])],
            ),
            (
                "Refusjon ytes kun til pasienter som ikke har tilfredsstillende effekt av, "
                "eller ikke tåler, minst to alternative legemidler i samme terapiområde.",
                [],
            ),
            ("Refusjon ytes selv om legemidlet skal brukes i mindre enn tre måneder.", []),
            (
                "Behandlingen skal være instituert på sykehus.",
                [(("9", "Forskrevet på sykehus"), [], [("1101", "1", "Ja")])],
            ),
        )
    )


_DRIVING_RISK = frozenset(("Analgetika", "Psykoleptika", "Antiepileptika"))


def _assign_vilkar(gen: _Gen, families: list[_Family], vilkar: list[_Vilkar]) -> None:
    """Merkevare conditions: unregistered drugs, antibiotics, medication review, driving."""
    rng = gen.rng
    by_group: dict[str, list[_Vilkar]] = {}
    for v in vilkar:
        by_group.setdefault(v.gruppe[0], []).append(v)
    for family in families:
        if family.preparattype[0] == "11":
            family.vilkar.append(vilkar[0].id)
        if family.l2_name.startswith("Antibakterielle") and rng.random() < 0.9:
            family.vilkar.append(rng.choice(by_group["5"]).id)
        if family.l2_name in _DRIVING_RISK and rng.random() < 0.5:
            family.vilkar.append(rng.choice(by_group["7"]).id)
        if family.l1 in ("C", "N") and rng.random() < 0.08:
            family.vilkar.append(rng.choice(by_group["6"]).id)


def _pick_product_groups(
    gen: _Gen, n: int
) -> list[tuple[str, str, str, tuple[tuple[str, str, str], ...]]]:
    """``n`` commodity product groups, at least one for each kind of commodity."""
    rng = gen.rng
    shuffled = rng.sample(_PRODUCT_GROUPS, len(_PRODUCT_GROUPS))
    first = list({group[2]: group for group in shuffled}.values())
    return first + [g for g in shuffled if g not in first][: max(0, n - len(first))]


def _build_refusjon(
    gen: _Gen, families: list[_Family], packages: list[_Package], n_rh: int
) -> tuple[list[_Hjemmel], list[tuple[str, list[_RefGroup]]]]:
    """Drug reimbursement groups keyed on product ATC codes, plus commodity groups (RID_n)."""
    rng = gen.rng
    n_commodity = min(len(_PRODUCT_GROUPS), max(3, round(n_rh * 0.01)), n_rh - 1)
    weight: dict[str, float] = {}
    codes: dict[str, _Atc] = {}
    for family in families:
        if family.atc is not None:
            codes[family.atc.code] = family.atc
            weight[family.atc.code] = weight.get(family.atc.code, 0.0) + len(family.brands)
    # Codes with many brands (generics) are the likeliest to be reimbursed.
    ranked = sorted(codes.values(), key=lambda a: -weight[a.code] * rng.random())
    kinds = (
        (("200", "§5-14 §2"), 80),
        (("950", "H-resept"), 8),
        (("300", "§5-14 §3"), 4),
        (("301", "§5-14 §3a"), 4),
        (("400", "§5-14 §4"), 4),
    )
    hjemler = []
    by_code: dict[str, list[_RefGroup]] = {}
    for i in range(n_rh - n_commodity):
        code, dn = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
        atc = ranked[i % len(ranked)]
        groups = [
            _RefGroup(
                gen.id(),
                f"{atc.code}_{j + 1}",
                f"{atc.code}_{j + 1}",
                atc,
                atc.code[0],
                gen.day(2008),
            )
            for j in range(2 if rng.random() < 0.15 else 1)
        ]
        by_code.setdefault(atc.code, []).extend(groups)
        hjemler.append(_Hjemmel(code, dn, code != "301", code == "301", groups))
    for package in packages:
        atc = package.product.slot.family.atc
        if atc is not None and atc.code in by_code and rng.random() < 0.9:
            package.refusjon = rng.choice(by_code[atc.code])
    commodity = []
    for code3, _, kind, codes7 in _pick_product_groups(gen, n_commodity):
        groups = [
            _RefGroup(
                f"RID_{gen.unique_number(100000, 999999)}", code7, name7, None, "", gen.day(2010)
            )
            for _, code7, name7 in codes7
            for _ in range(rng.randint(1, 2))
        ]
        section = {"5": f"§5-14 §5.{int(code3[1:])}", "6": f"§5-14 §6.{int(code3[1:])}"}
        hjemler.append(_Hjemmel(code3, section.get(code3[0], "§10-7i"), True, False, groups))
        commodity.append((kind, groups))
    return hjemler, commodity


def _interaction_units(
    gen: _Gen,
    tree: list[_Atc],
    moieties: list[_Substance],
    unmarketed: list[_Substance],
    herbals: list[_Substance],
    not_assessed: set[str],
) -> list[tuple[float, list[_Unit], list[float]]]:
    """Substance groups by kind, as (share of picks, units, cumulative weights)."""
    rng = gen.rng

    def atc_unit(nodes: list[_Atc], name: str | None) -> _Unit:
        head = nodes[0]
        return _Unit(
            name, [(n.name, n, None) for n in nodes], _lower_first(head.name), _english(head.name)
        )

    single = []
    for m in moieties:
        if m.atc.code in not_assessed:
            continue
        nodes = [m.atc, *[c for c in m.combo_codes if c.code not in not_assessed][:3]]
        single.append(
            _Unit(
                m.name if len(nodes) > 1 else None,
                [(n.name, n, None) for n in nodes],
                m.name.lower(),
                m.name_en.lower(),
            )
        )
    weights = [min(40.0, rng.paretovariate(1.3)) for _ in single]
    l2s = [l2 for l1 in tree for l2 in l1.children]
    l3s = [l3 for l2 in l2s for l3 in l2.children]
    l4s = [l4 for l3 in l3s for l4 in l3.children if len(l4.children) > 1]
    kinds: list[tuple[float, list[_Unit], list[float] | None]] = [
        (0.78, single, weights),
        (0.04, [atc_unit([u.atc], None) for u in unmarketed], None),
        (
            0.10,
            [atc_unit([l4, *l4.children], l4.name if rng.random() < 0.3 else None) for l4 in l4s],
            None,
        ),
        (
            0.04,
            [
                atc_unit([l3, *l3.children, *[c for l4 in l3.children for c in l4.children]], None)
                for l3 in l3s
            ],
            None,
        ),
        (
            0.005,
            [
                atc_unit(
                    [l2, *l2.children, *[l4 for l3 in l2.children for l4 in l3.children]], l2.name
                )
                for l2 in l2s
            ],
            None,
        ),
        (
            0.025,
            [_Unit(h.name, [(h.name, None, h.id)], h.name.lower(), h.name_en) for h in herbals],
            None,
        ),
        (
            0.01,
            [
                _Unit(None, [(name, _Atc(code, name), None)], name.lower(), name)
                for code, name in _FICTIONAL_ATC
            ],
            None,
        ),
    ]
    return [
        (share, units, list(accumulate(w if w else [1.0] * len(units))))
        for share, units, w in kinds
        if units
    ]


def _build(gen: _Gen) -> _Catalogue:
    rng = gen.rng
    herbal_names = rng.sample(_HERBALS, min(len(_HERBALS), max(1, round(15 * gen.scale))))
    herbals = [_Substance(gen.id(), n, en) for n, en in herbal_names]
    mono, combos = _plan_slots(
        gen,
        gen.count("LegemiddelMerkevare"),
        gen.count("VirkestoffMedStyrke"),
        gen.count("Byttegruppe"),
        len(herbals),
    )
    kortdoser, n_structured = _kortdose_table(gen.count("Kortdose"))
    for_products = [kortdoser[0], *(k for k in kortdoser if k.dn in _COMMON_KORTDOSER)]
    tree = _build_atc(gen, round(len(mono) * 1.15) + 10)
    moieties, unmarketed, families, slots = _build_products(
        gen, tree, mono, combos, herbals, for_products
    )
    unmarketed = _fill_substances(
        gen, moieties, unmarketed, gen.count("Virkestoff"), len(moieties) + len(herbals)
    )
    packages = _build_packages(gen, slots, gen.count("Legemiddelpakning"))
    vilkar = _build_vilkar(gen, gen.count("Vilkar"))
    _assign_vilkar(gen, families, vilkar)
    hjemler, commodity = _build_refusjon(gen, families, packages, gen.count("Refusjonshjemmel"))
    return _Catalogue(
        tree=tree,
        moieties=moieties,
        unmarketed=unmarketed,
        herbals=herbals,
        families=families,
        slots=slots,
        products=[p for s in slots for p in s.products],
        packages=packages,
        byttegrupper=_build_byttegrupper(gen, slots, gen.count("Byttegruppe")),
        lv_slots=_build_lv(gen, slots, gen.count("LegemiddelVirkestoff")),
        doses=_build_doses(gen, packages, gen.count("Legemiddeldose")),
        vilkar=vilkar,
        hjemler=hjemler,
        commodity_groups=commodity,
        kortdoser=kortdoser,
        structured_kortdoser=n_structured,
    )


# --------------------------------------------------------------------------------------------
# XML writing
# --------------------------------------------------------------------------------------------

_PAD = tuple("\n" + "  " * i for i in range(24))


class _Xml:
    """Minimal streaming writer producing indented XML text through a buffer."""

    __slots__ = ("_fh", "_buf", "_depth")

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh
        self._buf: list[str] = []
        self._depth = 0

    def open(self, tag: str, attrs: str = "") -> None:
        self._buf.append(f"{_PAD[self._depth]}<{tag}{attrs}>")
        self._depth += 1

    def close(self, tag: str) -> None:
        self._depth -= 1
        self._buf.append(f"{_PAD[self._depth]}</{tag}>")
        if len(self._buf) > 16384:
            self.flush()

    def leaf(self, tag: str, text: str) -> None:
        self._buf.append(f"{_PAD[self._depth]}<{tag}>{_esc(text)}</{tag}>")

    def empty(self, tag: str, attrs: str) -> None:
        self._buf.append(f"{_PAD[self._depth]}<{tag}{attrs} />")

    def cv(self, tag: str, value: str, system: str, dn: str) -> None:
        self.empty(tag, f' V="{_attr(value)}" S="{_OID}{system}" DN="{_attr(dn)}"')

    def cs(self, tag: str, value: str, dn: str) -> None:
        self.empty(tag, f' V="{_attr(value)}" DN="{_attr(dn)}"')

    def pq(self, tag: str, value: float, unit: str) -> None:
        self.empty(tag, f' V="{_num(value)}" U="{_attr(unit)}"')

    def atc(self, tag: str, node: _Atc) -> None:
        self.cv(tag, node.code, "7180", node.name)

    def begin(self, gen: _Gen, kind: str) -> None:
        """Open an ``Oppf<kind>`` entry with its entry Id, Tidspunkt and Status A."""
        self.open(f"Oppf{kind}")
        self.leaf("Id", gen.id())
        self.leaf("Tidspunkt", gen.stamp())
        self.empty("Status", ' V="A" DN="Aktiv oppføring"')

    def raw(self, text: str) -> None:
        self._buf.append(text)

    def flush(self) -> None:
        self._fh.write("".join(self._buf))
        self._buf.clear()


def _write_base(
    w: _Xml,
    family: _Family,
    nfs: str,
    reseptgruppe: str,
    *,
    refusjon: Sequence[tuple[_RefGroup, str]] = (),
    bytte: _Byttegruppe | None = None,
    prescribable: bool = False,
) -> None:
    """The typeLegemiddel fields, in schema order, shared by the four drug payloads.

    ``prescribable`` adds RefVilkar and AdministreringLegemiddel, which FEST fills only on
    LegemiddelMerkevare and LegemiddelVirkestoff.
    """
    if family.atc is not None:
        w.atc("Atc", family.atc)
    w.leaf("NavnFormStyrke", nfs)
    w.cs("Reseptgruppe", reseptgruppe, f"Reseptgruppe {reseptgruppe}")
    w.cv("LegemiddelformKort", family.form.code, "7448", family.form.dn)
    if prescribable:
        for vilkar_id in family.vilkar:
            w.leaf("RefVilkar", vilkar_id)
    w.cs("Preparattype", *family.preparattype)
    if family.preparattype[0] == "11":
        w.cs("TypeSoknadSlv", "2", "Søknad vurderes av apotek")
    else:
        w.cs("TypeSoknadSlv", "1", "Skal ikke søkes")
    if family.reseptgruppe == "A":
        w.leaf("Opioidsoknad", "true")
    for group, since in refusjon:
        w.open("Refusjon")
        w.leaf("RefRefusjonsgruppe", group.id)
        w.leaf("GyldigFraDato", since)
        w.close("Refusjon")
    if bytte is not None:
        w.open("PakningByttegruppe")
        w.leaf("RefByttegruppe", bytte.id)
        w.leaf("GyldigFraDato", bytte.since)
        w.close("PakningByttegruppe")
    if prescribable:
        _write_admin(w, family)
    if family.black_triangle:
        w.cv("SvartTrekant", "1", "7510", "Legemiddel med særlig overvåkning")


def _write_admin(w: _Xml, family: _Family) -> None:
    a = family.admin
    w.open("AdministreringLegemiddel")
    for code, dn in a.routes:
        w.cv("Administrasjonsvei", code, "7477", dn)
    for tag, value in (
        ("KanKnuses", a.knuses),
        ("KanApnes", a.apnes),
        ("Bolus", a.bolus),
        ("Deling", a.deling),
    ):
        if value is not None:
            w.cs(tag, *value)
    if family.form.dose_unit is not None:
        code, dn, _ = _DOSE_UNITS[family.form.dose_unit]
        w.cv("EnhetDosering", code, "7480", dn)
    for k in a.kortdoser:
        w.cv("Kortdose", k.code, "7478", k.dn)
    for code, dn in a.precautions:
        w.cv("ForhandsregelInntak", code, "7479", dn)
    for code, dn in a.labels:
        w.cv("BruksomradeEtikett", code, "7488", dn)
    w.close("AdministreringLegemiddel")


def _write_sorted(w: _Xml, slot: _Slot) -> None:
    for i, strength in enumerate(slot.strengths):
        w.open("SortertVirkestoffMedStyrke")
        w.leaf("Sortering", str(i))
        w.leaf("RefVirkestoffMedStyrke", strength.id)
        w.close("SortertVirkestoffMedStyrke")
    if not slot.strengths:
        for i, substance in enumerate(slot.family.substances):
            w.open("SortertVirkestoffUtenStyrke")
            w.leaf("Sortering", str(i))
            w.leaf("RefVirkestoff", substance.id)
            w.close("SortertVirkestoffUtenStyrke")


def _write_spc(w: _Xml, gen: _Gen, ema: bool) -> None:
    rng = gen.rng
    if ema:
        url = (
            "https://www.ema.europa.eu/no/documents/product-information/"
            f"epar-{rng.randint(100, 6000):06d}-product-information_no.pdf"
        )
    else:
        url = (
            f"https://www.legemiddelsok.no/_layouts/15/Preparatomtaler/Spc/"
            f"{rng.randint(0, 25):02d}-{rng.randint(1000, 19999):05d}.pdf"
        )
    w.open("Preparatomtaleavsnitt")
    w.cs("Avsnittoverskrift", "SPCHUMAN_00", "INNHOLDSFORTEGNELSE")
    w.open("Lenke")
    w.empty("Www", f' V="{_attr(url)}"')
    w.close("Lenke")
    w.close("Preparatomtaleavsnitt")


def _write_merkevare(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    rng = gen.rng
    w.open("KatLegemiddelMerkevare")
    for p in cat.products:
        family = p.slot.family
        w.begin(gen, "LegemiddelMerkevare")
        w.open("LegemiddelMerkevare", _FS)
        _write_base(w, family, p.nfs, family.reseptgruppe, prescribable=True)
        w.leaf("Id", p.id)
        w.leaf("Varenavn", p.varenavn)
        w.leaf("LegemiddelformLang", family.long_name)
        _write_sorted(w, p.slot)
        w.open("ProduktInfo")
        if rng.random() < 0.8:
            w.leaf("Varseltrekant", "false")
        if p.referanse is not None:
            w.leaf("Referanseprodukt", p.referanse)
        w.leaf("Produsent", p.produsent)
        w.close("ProduktInfo")
        w.open("Reseptgyldighet")
        w.leaf("Varighet", "P10D" if family.l2_name.startswith("Antibakterielle") else "P1Y")
        w.close("Reseptgyldighet")
        if rng.random() < 0.82:
            _write_spc(w, gen, ema=False)
        w.close("LegemiddelMerkevare")
        w.close("OppfLegemiddelMerkevare")
    w.close("KatLegemiddelMerkevare")
    return len(cat.products)


def _package_info(w: _Xml, gen: _Gen, package: _Package) -> None:
    rng = gen.rng
    product = package.product
    form = product.slot.family.form
    unit, unit_dn = form.pack_unit
    count = rng.choice((1, 1, 5, 10)) if form.kind == "inj" else 1
    if form.kind in ("solid", "patch"):
        label = str(package.size)
    elif form.kind == "inhal":
        label = f"{package.size} doser"
    else:
        label = f"{package.size} {unit}"
    w.open("Pakningsinfo")
    w.leaf("RefLegemiddelMerkevare", product.id)
    w.leaf("Pakningsstr", f"{count} x {label}" if count > 1 else label)
    w.cv("EnhetPakning", unit, "7452", unit_dn)
    pack_code, pack_dn = package.pack_type
    w.cv("Pakningstype", pack_code, "7449", pack_dn)
    if count > 1:
        w.leaf("Antall", str(count))
    w.leaf("Mengde", str(package.size))
    strengths = product.slot.strengths
    if (
        len(strengths) == 1
        and strengths[0].denom is None
        and strengths[0].unit in ("mg", "g")
        and rng.random() < 0.7
    ):
        per_unit_mg = strengths[0].value * (1000 if strengths[0].unit == "g" else 1)
        ddd_mg = per_unit_mg * rng.choice((1, 1, 2, 3))
        if ddd_mg >= 1000:
            w.pq("DDD", ddd_mg / 1000, "g")
        else:
            w.pq("DDD", ddd_mg, "mg")
        w.leaf("Statistikkfaktor", _num(round(package.size * per_unit_mg / ddd_mg, 3)))
    w.close("Pakningsinfo")


def _prices(w: _Xml, gen: _Gen, package: _Package) -> None:
    rng = gen.rng
    aip = round(min(90000.0, rng.lognormvariate(5.0, 1.3)), 2)
    aup = round(aip * 1.1 + 35, 1)
    prices = [("3", "AIP", aip), ("4", "AUP", aup)]
    if package.refusjon is not None:
        prices.append(("2", "Refusjonspris", aup))
    if package.byttegruppe is not None and rng.random() < 0.6:
        prices.append(("5", "Trinnpris", round(aup * rng.uniform(0.35, 0.8), 1)))
    since = gen.recent_day(400, 20)
    for code, dn, amount in prices:
        w.open("PrisVare")
        w.cv("Type", code, "7453", dn)
        w.empty("Pris", f' V="{_money(amount)}" U="NOK"')
        w.leaf("GyldigFraDato", since)
        w.close("PrisVare")


def _write_pakninger(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    rng = gen.rng
    w.open("KatLegemiddelpakning")
    for package in cat.packages:
        product = package.product
        family = product.slot.family
        rg = family.reseptgruppe
        if rg == "CF":
            rg = "C" if rng.random() < 0.5 else "F"
        refusjon = [(package.refusjon, package.refusjon.since)] if package.refusjon else []
        w.begin(gen, "Legemiddelpakning")
        w.open("Legemiddelpakning", _FS)
        _write_base(w, family, product.nfs, rg, refusjon=refusjon, bytte=package.byttegruppe)
        w.leaf("Id", package.id)
        w.leaf("Varenr", package.varenr)
        if rng.random() < 0.96:
            w.leaf("Ean", _ean(package.varenr))
        if family.form.kind == "inj" and rng.random() < 0.4:
            w.cs("Oppbevaring", "K", "Kaldt (2-8 grader)")
        elif rng.random() < 0.7:
            w.cs("Oppbevaring", "R", "Rom (15-25 grader)")
        _package_info(w, gen, package)
        _prices(w, gen, package)
        w.open("Markedsforingsinfo")
        if rng.random() < 0.02:
            w.leaf("VarenrUtgaende", f"{rng.randint(1, 599999):06d}")
        w.leaf("Markedsforingsdato", gen.day(1995, 30))
        if rng.random() < 0.02:
            w.leaf("AvregDato", gen.recent_day(0, 90))
        elif rng.random() < 0.01:
            w.leaf("MidlUtgattDato", gen.recent_day(60, 30))
        w.close("Markedsforingsinfo")
        if rng.random() < 0.05:
            _write_spc(w, gen, ema=True)
        w.close("Legemiddelpakning")
        w.close("OppfLegemiddelpakning")
    w.close("KatLegemiddelpakning")
    return len(cat.packages)


def _write_virkestoff_entry(w: _Xml, gen: _Gen, substance: _Substance) -> None:
    w.begin(gen, "Virkestoff")
    w.open("Virkestoff", _FS)
    w.leaf("Id", substance.id)
    w.leaf("Navn", substance.name)
    w.leaf("NavnEngelsk", substance.name_en)
    for salt in substance.salts:
        w.leaf("RefVirkestoff", salt.id)
    w.close("Virkestoff")
    w.close("OppfVirkestoff")


def _write_strength_entry(w: _Xml, gen: _Gen, s: _Strength) -> None:
    w.begin(gen, "Virkestoff")
    w.open("VirkestoffMedStyrke", _FS)
    w.leaf("Id", s.id)
    w.pq("Styrke", s.value, s.unit)
    if s.denom is not None:
        w.pq("StyrkeNevner", *s.denom)
    w.leaf("RefVirkestoff", s.substance.id)
    if s.upper is None:
        w.cv("Styrkeoperator", "L", "7445", "Lik")
    else:
        w.cv("Styrkeoperator", "I", "7445", "Intervall")
        w.leaf("StyrkeOvreVerdi", _num(s.upper))
    if s.kombi is not None:
        w.atc("AtcKombipreparat", s.kombi)
    w.close("VirkestoffMedStyrke")
    w.close("OppfVirkestoff")


def _write_virkestoff(w: _Xml, gen: _Gen, cat: _Catalogue) -> tuple[int, int]:
    """Each moiety, then its salts and strengths; then unmarketed and herbal substances."""
    n_vs = n_vms = 0
    w.open("KatVirkestoff")
    for moiety in cat.moieties:
        for substance in (moiety, *moiety.salts):
            _write_virkestoff_entry(w, gen, substance)
            n_vs += 1
        for strength in moiety.strengths:
            _write_strength_entry(w, gen, strength)
            n_vms += 1
    for substance in (*cat.unmarketed, *cat.herbals):
        _write_virkestoff_entry(w, gen, substance)
        n_vs += 1
    w.close("KatVirkestoff")
    return n_vs, n_vms


def _write_legemiddelvirkestoff(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    w.open("KatLegemiddelVirkestoff")
    for lv_id, slot in cat.lv_slots:
        family = slot.family
        packages = [pk for p in slot.products for pk in p.packages]
        groups = list({id(pk.refusjon): pk.refusjon for pk in packages if pk.refusjon}.values())
        names = "/".join(s.name for s in family.substances)
        nfs = f"{names} {family.form.abbrev} {_strength_text(slot.strengths)}"
        w.begin(gen, "LegemiddelVirkestoff")
        w.open("LegemiddelVirkestoff", _FS)
        rg = "C" if family.reseptgruppe == "CF" else family.reseptgruppe
        _write_base(w, family, nfs, rg, refusjon=[(g, g.since) for g in groups], prescribable=True)
        w.leaf("Id", lv_id)
        _write_sorted(w, slot)
        for product in slot.products:
            w.leaf("RefLegemiddelMerkevare", product.id)
        for package in packages:
            w.leaf("RefPakning", package.id)
        unit, unit_dn = family.form.pack_unit
        w.cv("ForskrivningsenhetResept", unit, "7452", unit_dn)
        w.close("LegemiddelVirkestoff")
        w.close("OppfLegemiddelVirkestoff")
    w.close("KatLegemiddelVirkestoff")
    return len(cat.lv_slots)


_COMMODITY_WEIGHTS = {"MedForbMatr": 10, "Naringsmiddel": 6, "Brystprotese": 1}
_COMMODITY_PACKS = {
    "MedForbMatr": (1, 10, 30, 50, 100),
    "Naringsmiddel": (1, 4, 6, 24),
    "Brystprotese": (1,),
}


def _write_handelsvare(w: _Xml, gen: _Gen, cat: _Catalogue, n: int) -> int:
    """Commodities (consumables, nutrition, breast prostheses) linked to RID_n groups."""
    rng = gen.rng
    weights = [_COMMODITY_WEIGHTS[kind] for kind, _ in cat.commodity_groups]
    w.open("KatHandelsvare")
    for _ in range(n):
        kind, groups = rng.choices(cat.commodity_groups, weights=weights)[0]
        w.begin(gen, "Handelsvare")
        _write_vare(w, gen, kind, rng.choice(groups))
        w.close("OppfHandelsvare")
    w.close("KatHandelsvare")
    return n


def _write_vare(w: _Xml, gen: _Gen, kind: str, group: _RefGroup) -> None:
    rng = gen.rng
    per_pack = rng.choice(_COMMODITY_PACKS[kind])
    brand = gen.stem() + rng.choice(("care", "med", "flex", "plus", "fit", "pro"))
    w.open(kind, _FS)
    w.leaf("Nr", f"{gen.unique_number(600000, 999999):06d}")
    w.leaf("Navn", f"{group.gruppe_dn} {brand.capitalize()} {per_pack} stk")
    w.open("ProduktInfoVare")
    w.leaf("ProduktNr", f"{rng.choice('ABCDEFHKMNPRST')}{rng.randint(1000, 99999)}")
    if kind == "Naringsmiddel":
        w.leaf("Volum", f"{rng.choice((125, 200, 250, 500, 1000))} ml")
    w.cv("EnhetStorrelse", "stk", "7452", "stykk")
    w.leaf("AntPerPakning", str(per_pack))
    w.leaf("TillattMerMakspris", "true" if rng.random() < 0.2 else "false")
    w.close("ProduktInfoVare")
    name, address, phone = rng.choice(_SUPPLIERS)
    w.open("Leverandor")
    w.leaf("Navn", name)
    w.leaf("Adresse", address)
    w.leaf("Telefon", phone)
    w.close("Leverandor")
    price = round(rng.lognormvariate(5.5, 1.0), 2)
    prices = [
        ("N", "Innkjøpspris", price),
        ("P", "Maksimal refusjonspris per pakning", price * 1.25),
    ]
    if per_pack > 1:
        prices.append(("E", "Maksimal refusjonspris per enhet", price * 1.25 / per_pack))
    since = gen.recent_day(200)
    for code, dn, amount in prices:
        w.open("PrisVare")
        w.cv("Type", code, "7423", dn)
        w.empty("Pris", f' V="{_money(amount)}" U="NOK"')
        w.leaf("GyldigFraDato", since)
        w.close("PrisVare")
    w.open("Refusjon")
    w.leaf("RefRefusjonsgruppe", group.id)
    w.leaf("GyldigFraDato", group.since)
    w.close("Refusjon")
    if kind == "MedForbMatr" and rng.random() < 0.5:
        w.open("BestanddelMatr")
        w.leaf("Navn", rng.choice(("Hovedkomponent", "Beskyttelsesfilm", "Kleber")))
        w.leaf(
            "Materiale",
            rng.choice(("Polyuretan", "Silikon", "Polyetylen", "PVC-fri plast", "Hydrokolloid")),
        )
        w.close("BestanddelMatr")
    w.close(kind)


def _write_refusjon(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    rng = gen.rng
    refusjon_vilkar = [v.id for v in cat.vilkar if v.gruppe[0] == "3"]
    w.open("KatRefusjon")
    for hjemmel in cat.hjemler:
        w.begin(gen, "Refusjon")
        w.open("Refusjonshjemmel")
        w.cv("Refusjonshjemmel", hjemmel.code, "7427", hjemmel.dn)
        w.leaf("KreverVarekobling", "true" if hjemmel.varekobling else "false")
        w.leaf("KreverVedtak", "true" if hjemmel.vedtak else "false")
        for group in hjemmel.groups:
            w.open("Refusjonsgruppe")
            w.leaf("Id", group.id)
            w.cv("GruppeNr", group.gruppe_nr, "7451" if group.atc else "7403", group.gruppe_dn)
            if group.atc is not None:
                w.atc("Atc", group.atc)
            with_codes = group.atc is not None and hjemmel.code != "950"
            w.leaf("KreverRefusjonskode", "true" if with_codes else "false")
            if group.atc is not None:
                w.leaf("RefusjonsberettighetBruk", _refusjon_bruk(gen, group.atc))
            if hjemmel.code == "950" and rng.random() < 0.5:
                w.leaf("RefVilkar", rng.choice(refusjon_vilkar))
            if with_codes:
                _write_refusjonskoder(w, gen, group, refusjon_vilkar)
            w.close("Refusjonsgruppe")
        w.close("Refusjonshjemmel")
        w.close("OppfRefusjon")
    w.close("KatRefusjon")
    return len(cat.hjemler)


def _refusjon_bruk(gen: _Gen, atc: _Atc) -> str:
    rng = gen.rng
    return rng.choice(
        (
            f"Behandling med {atc.name.lower()} av pasienter med kronisk sykdom der behandlingen "
            f"er forventet å vare i minst tre måneder.",
            "Til pasienter der andre legemidler i samme gruppe er forsøkt uten tilfredsstillende "
            "effekt, eller ikke er tolerert.",
            "Som tilleggsbehandling hos voksne pasienter som ikke er tilstrekkelig kontrollert med "
            "standardbehandling. Behandlingen skal være instituert av spesialist.",
        )
    )


def _write_refusjonskoder(w: _Xml, gen: _Gen, group: _RefGroup, vilkar: list[str]) -> None:
    rng = gen.rng
    diagnoses = _DIAGNOSES[group.l1]
    for system, code, dn in rng.sample(diagnoses, rng.randint(1, len(diagnoses))):
        w.open("Refusjonskode")
        w.cv("Refusjonskode", code, system, dn)
        if system == "7170" and rng.random() < 0.15:
            w.leaf("Underterm", f"{dn}, behandlingskrevende")
        w.leaf("GyldigFraDato", group.since)
        if rng.random() < 0.03:
            w.leaf("ForskrivesTilDato", gen.recent_day(0, 120))
        if vilkar and rng.random() < 0.6:
            for vilkar_id in rng.sample(vilkar, min(len(vilkar), rng.randint(1, 2))):
                w.open("Refusjonsvilkar")
                w.leaf("RefVilkar", vilkar_id)
                w.leaf("FraDato", group.since)
                w.close("Refusjonsvilkar")
        w.close("Refusjonskode")


def _write_vilkar(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    w.open("KatVilkar")
    for v in cat.vilkar:
        w.begin(gen, "Vilkar")
        w.open("Vilkar")
        w.leaf("Id", v.id)
        w.leaf("VilkarNr", v.nr)
        group, group_dn = v.gruppe
        w.cv("Gruppe", group, "7437", group_dn)
        w.cs("GjelderFor", *v.gjelder)
        w.leaf("Tekst", v.text)
        w.leaf("GyldigFraDato", v.since)
        for (type_code, type_dn), texts, coded in v.structured:
            w.open("StrukturertVilkar")
            w.cv("Type", type_code, "7439", type_dn)
            for text in texts:
                w.leaf("VerdiTekst", text)
            for system, code, dn in coded:
                w.cv("VerdiKodet", code, system, dn)
            w.close("StrukturertVilkar")
        w.close("Vilkar")
        w.close("OppfVilkar")
    w.close("KatVilkar")
    return len(cat.vilkar)


_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "é": "e"})
_VARSEL_TYPES = (
    (("2", "Leveringssvikt"), 40),
    (("1", "Sikkerhetsinformasjon"), 20),
    (("3", "Salgsstopp og tilbaketrekking"), 10),
    (("4", "Refusjon"), 10),
    (("7", "Retningslinjer og råd"), 10),
    (("5", "Indikasjonsendring"), 5),
    (("6", "Legemiddelanmeldelse"), 5),
)


def _varsel_content(
    gen: _Gen, cat: _Catalogue, kind: str, lv_by_family: dict[int, list[str]]
) -> tuple[str, str, list[tuple[str, str, list[str]]]]:
    """Heading, text and Referanseelement (Klasse code, DN, RefElement ids) of a notice."""
    rng = gen.rng
    product = rng.choice(cat.products)
    family = product.slot.family
    subject = family.substances[0].name.lower()
    packages = [("2", "LegemiddelpakningId", [pk.id for pk in product.packages])]
    brands = [
        (
            "1",
            "LegemiddelMerkevareId",
            [p.id for s in cat.slots if s.family is family for p in s.products][:10],
        )
    ]
    if kind == "2":
        month = rng.choice(("mars", "juni", "september", "desember"))
        return (
            f"Mangel på {product.varenavn} {_lower_first(family.form.dn)}",
            f"Det er mangel på {product.varenavn} {_lower_first(family.form.dn)}. Leverandøren "
            f"forventer at varen er tilbake i løpet av {month}. "
            f"Andre legemidler med {subject} kan fortsatt leveres, og apotek kan bytte til "
            f"likeverdige preparater der det finnes. Vurder om pasienten kan klare seg med et "
            f"alternativt legemiddel i samme terapiområde.",
            packages,
        )
    if kind == "3":
        return (
            f"Tilbaketrekking av {product.varenavn}",
            f"Enkelte batcher av {product.varenavn} trekkes tilbake fra markedet som et "
            f"forsiktighetstiltak etter funn ved kvalitetskontroll. Det er ikke grunn til å "
            f"tro at pasienter har tatt skade. Pasienter bør ikke avslutte behandlingen uten "
            f"å rådføre seg med lege eller apotek.",
            packages,
        )
    if kind == "4":
        groups = [pk.refusjon.id for pk in product.packages if pk.refusjon]
        refs = [("4", "RefusjonsgruppeId", groups[:1])] if groups else brands
        return (
            f"Endret refusjon for {subject}",
            f"Fra neste refusjonsperiode endres vilkårene for refusjon av legemidler med "
            f"{subject}. Pasienter som allerede står på behandling kan fortsette, men nye "
            f"pasienter må oppfylle de oppdaterte refusjonsvilkårene.",
            refs,
        )
    if kind == "7":
        lv = lv_by_family.get(id(family), [])
        refs = [("3", "LegemiddelVirkestoffId", lv[:10])] if lv else brands
        return (
            f"Nye råd om bruk av {_lower_first(family.l2_name or family.form.dn)}",
            f"Direktoratet har oppdatert rådene om bruk av {subject}. Behandlingen bør "
            f"evalueres jevnlig, og laveste effektive dose bør benyttes i kortest mulig tid. "
            f"Se oppdaterte nasjonale retningslinjer for detaljer.",
            refs,
        )
    return (
        f"Viktig sikkerhetsinformasjon om {subject}",
        f"Nye data viser en økt risiko for alvorlige bivirkninger ved bruk av {subject} hos "
        f"enkelte pasientgrupper. Forskrivere bør vurdere nytte og risiko for den enkelte "
        f"pasient, informere om symptomer som bør føre til legekontakt, og rapportere "
        f"mistenkte bivirkninger.",
        brands,
    )


def _write_varsel(w: _Xml, gen: _Gen, cat: _Catalogue, n: int) -> int:
    rng = gen.rng
    lv_by_family: dict[int, list[str]] = {}
    for lv_id, slot in cat.lv_slots:
        lv_by_family.setdefault(id(slot.family), []).append(lv_id)
    w.open("KatVarselSlv")
    for _ in range(n):
        kind, kind_dn = rng.choices(
            [k for k, _ in _VARSEL_TYPES], weights=[wt for _, wt in _VARSEL_TYPES]
        )[0]
        heading, text, refs = _varsel_content(gen, cat, kind, lv_by_family)
        w.begin(gen, "VarselSlv")
        w.open("VarselSlv")
        w.cv("Type", kind, "7441", kind_dn)
        w.leaf("Overskrift", heading)
        w.leaf("Varseltekst", text)
        for code, dn in (("1", "Allmennlege"), ("2", "Spesialist"), ("3", "Sykehus")):
            w.cv("Visningsregel", code, "7442", dn)
        if rng.random() < 0.3:
            w.cv("Visningsregel", "4", "7442", "Apotek")
        w.leaf("FraDato", gen.recent_day(365))
        if rng.random() < 0.7:
            w.open("Lenke", _FS)
            w.leaf("Beskrivelse", "Les mer på dmp.no")
            ascii_heading = heading.lower().translate(_ASCII)
            slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in ascii_heading)
            w.empty("Www", f' V="{_attr("https://www.dmp.no/nyheter/" + slug)}"')
            w.close("Lenke")
        for code, dn, ids in refs:
            w.open("Referanseelement")
            w.cs("Klasse", code, dn)
            for ref in ids:
                w.leaf("RefElement", ref)
            w.close("Referanseelement")
        w.close("VarselSlv")
        w.close("OppfVarselSlv")
    w.close("KatVarselSlv")
    return n


def _write_code_system(
    w: _Xml,
    gen: _Gen,
    oid: str,
    name: str,
    publisher: str,
    elements: list[tuple[str, str | None, str, str, str | None]],
) -> None:
    """One OppfKodeverk: Info plus Elements as (Id, ParentId, Kode, Term, BeskrivelseTerm)."""
    w.begin(gen, "Kodeverk")
    w.open("Info")
    w.leaf("Id", f"{_OID}{oid}")
    w.leaf("Betegnelse", name)
    w.leaf("Kortnavn", name)
    w.leaf("AnsvarligUtgiver", publisher)
    w.close("Info")
    for element_id, parent, code, term, description in elements:
        w.open("Element")
        w.leaf("Id", element_id)
        if parent is not None:
            w.leaf("ParentId", parent)
        w.leaf("Kode", code)
        w.open("Term")
        w.leaf("Term", term)
        if description is not None:
            w.leaf("BeskrivelseTerm", description)
        w.close("Term")
        w.close("Element")
    w.close("OppfKodeverk")


def _write_kodeverk(w: _Xml, gen: _Gen, cat: _Catalogue) -> None:
    dmp = "Direktoratet for medisinske produkter"
    w.open("KatKodeverk")
    forms = list({f.code: f for f in _FORMS.values()}.values())
    _write_code_system(
        w, gen, "7448", "Legemiddelform", dmp, [(gen.id(), None, f.code, f.dn, None) for f in forms]
    )
    _write_code_system(
        w,
        gen,
        "7480",
        "Enhet for dosering",
        dmp,
        [
            (gen.id(), None, code, singular, plural)
            for code, singular, plural in _DOSE_UNITS.values()
        ],
    )
    _write_code_system(
        w,
        gen,
        "7478",
        "Kortdose",
        dmp,
        [(gen.id(), None, k.code, k.dn, k.template) for k in cat.kortdoser],
    )
    elements: list[tuple[str, str | None, str, str, str | None]] = []
    ids: dict[str, str] = {}

    def add(code: str, parent: str | None, term: str) -> None:
        if code not in ids:
            ids[code] = f"IDK_{gen.unique_number(100000, 999999)}"
            elements.append((ids[code], ids.get(parent) if parent else None, code, term, None))

    for code, term in (
        ("5", "Medisinsk forbruksmateriell"),
        ("6", "Næringsmidler"),
        ("9", "Brystproteser"),
    ):
        add(code, None, term)
    for code3, name, _, codes7 in _PRODUCT_GROUPS:
        add(code3, code3[0], name)
        for code5, code7, name7 in codes7:
            add(code5, code3, _SUBGROUP_NAMES[code5])
            add(code7, code5, name7)
    _write_code_system(w, gen, "7403", "Produktgruppe", "Helfo", elements)
    _write_atc_code_system(w, gen, cat)
    w.close("KatKodeverk")


def _write_atc_code_system(w: _Xml, gen: _Gen, cat: _Catalogue) -> None:
    """Kodeverk 7180, the ATC code system: every code of the tree (levels 1-5, the combination
    codes included), each under its parent, plus in each level-4 group one code no product,
    interaction or notice names (the real code system lists every WHO code, marketed or not).
    Ids and those extra names are made from the codes, not drawn, so the random stream of
    everything after it is unchanged."""
    w.open("OppfKodeverk")
    entry_id = uuid.uuid5(uuid.NAMESPACE_OID, f"{_OID}7180 {gen.hentet.isoformat()}")
    w.leaf("Id", f"ID_{str(entry_id).upper()}")
    w.leaf("Tidspunkt", gen.hentet.isoformat())
    w.empty("Status", ' V="A" DN="Aktiv oppføring"')
    w.open("Info")
    w.leaf("Id", f"{_OID}7180")
    w.leaf("Betegnelse", "ATC")
    w.leaf("Kortnavn", "ATC")
    w.leaf("AnsvarligUtgiver", "Direktoratet for medisinske produkter")
    w.close("Info")

    def element(node: _Atc, parent: _Atc | None) -> None:
        w.open("Element")
        w.leaf("Id", f"IDATC_{node.code}")
        if parent is not None:
            w.leaf("ParentId", f"IDATC_{parent.code}")
        w.leaf("Kode", node.code)
        w.open("Term")
        w.leaf("Term", node.name)
        w.empty("Sprak", ' V="NO" DN="Norsk"')
        w.close("Term")
        w.close("Element")
        for child in node.children:
            element(child, node)
        if len(node.code) == 5:
            number = max([0, *(int(c.code[5:7]) for c in node.children)]) + 1
            if number < 100:
                element(
                    _Atc(f"{node.code}{number:02d}", f"Virkestoff {node.code}{number:02d}"), node
                )

    for l1 in cat.tree:
        element(l1, None)
    w.close("OppfKodeverk")


def _write_byttegrupper(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    rng = gen.rng
    w.open("KatByttegruppe")
    for group in cat.byttegrupper:
        family = group.slot.family
        strength = _strength_text(group.slot.strengths).upper().replace(" ", "")
        w.begin(gen, "Byttegruppe")
        w.open("Byttegruppe")
        w.leaf("Id", group.id)
        w.cs(
            "Kode",
            group.kode,
            f"{family.substances[0].name.upper()} {family.form.plural} {strength}",
        )
        restricted = rng.random() < 0.08
        w.leaf("MerknadTilByttbarhet", "true" if restricted else "false")
        if restricted:
            w.leaf(
                "BeskrivelseByttbarhet",
                "Bytte bør ikke skje for pasienter som er stabilt "
                "innstilt på ett preparat. Gjelder ved oppstart av "
                "ny behandling.",
            )
        w.leaf("GyldigFraDato", group.since)
        w.close("Byttegruppe")
        w.close("OppfByttegruppe")
    w.close("KatByttegruppe")
    return len(cat.byttegrupper)


def _write_doser(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    w.open("KatLegemiddeldose")
    for dose in cat.doses:
        product = dose.product
        family = product.slot.family
        form = family.form
        w.begin(gen, "Legemiddeldose")
        w.open("Legemiddeldose", _FS)
        _write_base(w, family, product.nfs, family.reseptgruppe)
        w.leaf("Id", dose.id)
        w.leaf("LmrLopenr", dose.lmr)
        if form.kind in ("solid", "patch"):
            w.pq("Mengde", 1, "stk")
        else:
            w.pq("Mengde", dose.packages[0].size, form.pack_unit[0])
        if form.kind == "inj":
            w.cv(
                "Pakningstype", dose.packages[0].pack_type[0], "7449", dose.packages[0].pack_type[1]
            )
        w.leaf("RefLegemiddelMerkevare", product.id)
        for package in dose.packages:
            w.leaf("RefPakning", package.id)
        if form.dose_unit is not None:
            code, dn, _ = _DOSE_UNITS[form.dose_unit]
            w.cv("EnhetOrdinering", code, "7480", dn)
        w.close("Legemiddeldose")
        w.close("OppfLegemiddeldose")
    w.close("KatLegemiddeldose")
    return len(cat.doses)


# (mechanism, clinical consequence, what to monitor, what an alternative should avoid)
_MECHANISMS = (
    (
        "{a} hemmer {enz}-mediert metabolisme av {b}.",
        "Økt konsentrasjon av {b} og økt risiko for doserelaterte bivirkninger. I "
        "interaksjonsstudier økte AUC for {b} {x} ganger ved samtidig bruk av {a}.",
        "doserelaterte bivirkninger av {b}",
        "{enz}",
    ),
    (
        "{a} induserer {enz} og øker metabolismen av {b}.",
        "Redusert konsentrasjon av {b} med risiko for terapisvikt. Effekten kan vedvare i opptil "
        "to uker etter seponering av {a}.",
        "terapeutisk effekt av {b}",
        "{enz}",
    ),
    (
        "Begge legemidlene øker serotonerg aktivitet.",
        "Økt risiko for serotonergt syndrom med symptomer som agitasjon, svetting, tremor, "
        "hypertermi og myoklonier.",
        "symptomer på serotonergt syndrom",
        "serotonerg aktivitet",
    ),
    (
        "Additiv effekt på hjertets repolarisering (QT-forlengelse).",
        "Økt risiko for QT-forlengelse og ventrikulære arytmier, inkludert torsades de pointes.",
        "QT-tid (EKG) og elektrolytter",
        "QT-tiden",
    ),
    (
        "Additiv hemming av hemostasen via ulike mekanismer.",
        "Økt blødningsrisiko, særlig fra mage-tarmkanalen.",
        "tegn på blødning og hemoglobin",
        "hemostasen",
    ),
    (
        "Additiv sentralnervøs dempende effekt.",
        "Økt sedasjon og risiko for respirasjonsdepresjon, særlig hos eldre og ved høye doser.",
        "sedasjon og respirasjon",
        "sentralnervesystemet",
    ),
    (
        "Begge legemidlene reduserer renal utskillelse av kalium.",
        "Økt risiko for hyperkalemi, særlig ved nedsatt nyrefunksjon.",
        "serum-kalium og kreatinin",
        "kaliumbalansen",
    ),
    (
        "{a} danner tungt oppløselige komplekser med {b} i mage-tarmkanalen.",
        "Redusert absorpsjon og nedsatt effekt av {b}.",
        "effekten av {b}",
        "absorpsjonen av {b}",
    ),
    (
        "{a} reduserer renal utskillelse av {b} ved hemming av tubulær sekresjon.",
        "Økt serumkonsentrasjon av {b} med risiko for toksisitet.",
        "serumkonsentrasjon av {b}",
        "nyrefunksjonen",
    ),
    (
        "Additiv blodsukkersenkende effekt.",
        "Økt risiko for hypoglykemi.",
        "blodsukker",
        "blodsukkeret",
    ),
    (
        "Additiv blodtrykkssenkende effekt.",
        "Økt risiko for ortostatisk hypotensjon og svimmelhet, "
        "særlig ved oppstart av behandlingen.",
        "blodtrykk og svimmelhet",
        "blodtrykket",
    ),
)
_EXTRA_CONSEQUENCES = (
    "Risikoen er størst hos eldre, ved nedsatt nyre- eller leverfunksjon og ved høye doser.",
    "Flere kasusrapporter beskriver alvorlige hendelser ved kombinasjonen.",
    "Effekten inntrer vanligvis i løpet av få dager etter at kombinasjonen er startet.",
    "Den kliniske betydningen er størst ved langtidsbehandling.",
    "Interaksjonen er vist hos friske frivillige, og omfanget hos pasienter er usikkert.",
    "Store individuelle forskjeller i omfang er beskrevet, blant annet avhengig av genotype.",
)


def _interaction_texts(
    gen: _Gen, a: str, b: str, relevans: str
) -> tuple[str | None, str, str | None, str | None]:
    """(Situasjonskriterium, KliniskKonsekvens, Interaksjonsmekanisme, Handtering)."""
    rng = gen.rng
    values = {"a": a, "b": b, "enz": rng.choice(_ENZYMES), "x": f"{rng.randint(2, 9)}"}
    if relevans == "3":
        text = f"Ingen klinisk relevant endring i effekt eller konsentrasjon av {b}."
        if rng.random() < 0.5:
            text += " Interaksjonen er vist hos friske frivillige, og funnene er små."
        mech = rng.choice(
            (
                None,
                f"{a.capitalize()} gir en svak hemming av {values['enz']}, men endringen i "
                f"eksponering for {b} er liten.",
                "Studier har ikke vist farmakokinetisk eller farmakodynamisk "
                "påvirkning av betydning.",
            )
        )
        return None, text, mech, None
    mechanism, consequence, monitor, target = rng.choice(_MECHANISMS)
    text = " ".join(
        [consequence.format(**values), *rng.sample(_EXTRA_CONSEQUENCES, rng.randint(0, 2))]
    )
    mech = mechanism.format(**values)
    if rng.random() < 0.5:
        mech += (
            f" {b.capitalize()} har smal terapeutisk bredde, og små endringer i "
            f"konsentrasjonen kan ha klinisk betydning."
        )
    paragraphs = []
    if relevans == "1":
        paragraphs.append(
            f"Dosetilpasning: Kombinasjonen bør unngås. Dersom samtidig bruk er "
            f"nødvendig, bør dosen av {b} reduseres og pasienten følges tett."
        )
    elif rng.random() < 0.7:
        paragraphs.append(
            f"Dosetilpasning: Vurder å redusere dosen av {b} med anslagsvis "
            f"{rng.choice((25, 30, 50, 70))} % ved oppstart av {a}. Juster dosen "
            f"tilbake når {a} seponeres."
        )
    if rng.random() < 0.3:
        paragraphs.append(
            f"Justering av administrering: {b.capitalize()} bør tas minst "
            f"{rng.choice((2, 3, 4))} timer før eller {rng.choice((4, 6))} timer "
            f"etter {a}."
        )
    paragraphs.append(
        f"Monitorering: Følg {monitor.format(**values)} ved oppstart, "
        f"doseendring og seponering av {a}."
    )
    if rng.random() < 0.6:
        paragraphs.append(
            f"Legemiddelalternativer: Vurder å erstatte {a} med et legemiddel "
            f"som ikke påvirker {target.format(**values)}."
        )
    situation = None
    if rng.random() < 0.2:
        situation = rng.choice(
            (
                f"Gjelder ved {b}doser større eller lik {rng.choice((20, 50, 75, 100))} mg daglig.",
                f"Gjelder kun ved systemisk bruk av {a}.",
                f"Gjelder ved langtidsbruk (mer enn {rng.choice((7, 14, 30))} dager) av {a}.",
            )
        )
    return situation, text, mech, "\n".join(paragraphs) + "\n"


_TITLES = (
    "Effect of {a} on the pharmacokinetics of {b} in healthy volunteers",
    "Interaction between {a} and {b}: a case report",
    "Clinical relevance of the {a}-{b} interaction: a retrospective cohort study",
    "Pharmacodynamic interaction between {a} and {b} in elderly patients",
    "Influence of {a} on {b} plasma concentrations: a population pharmacokinetic analysis",
)


def _write_referanser(w: _Xml, gen: _Gen, a: _Unit, b: _Unit) -> None:
    """0-4 distinct literature references; at most one is the SPC of one of the drugs."""
    rng = gen.rng
    sources = rng.sample((None, *_TITLES), rng.choice((0, 1, 1, 2, 2, 3, 4)))
    for title in sources:
        w.open("Referanse")
        if title is None:
            w.leaf("Kilde", f"Preparatomtale (SPC) {b.display.capitalize()}")
            w.empty(
                "Lenke",
                f' V="https://www.legemiddelsok.no/_layouts/15/Preparatomtaler/Spc/'
                f'{rng.randint(0, 25):02d}-{rng.randint(1000, 19999):05d}.pdf"',
            )
        else:
            authors = ", ".join(
                f"{rng.choice(_SURNAMES)} {rng.choice('ABCDEFGHJKLMNOPRST')}"
                f"{rng.choice(('', 'A', 'E', 'K', 'M'))}"
                for _ in range(rng.randint(1, 3))
            )
            year = rng.randint(1985, 2025)
            page = rng.randint(10, 2000)
            w.leaf(
                "Kilde",
                f"{authors}, et al. {title.format(a=a.display_en, b=b.display_en)}. "
                f"{rng.choice(_JOURNALS)} {year};{rng.randint(1, 120)}:"
                f"{page}-{page + rng.randint(2, 12)}",
            )
            if rng.random() < 0.95:
                pmid = rng.randint(1000000, 39999999)
                w.empty("Lenke", f' V="https://pubmed.ncbi.nlm.nih.gov/{pmid}/"')
        w.close("Referanse")


def _write_substansgruppe(w: _Xml, unit: _Unit) -> None:
    w.open("Substansgruppe")
    if unit.name is not None:
        w.leaf("Navn", unit.name)
    for name, atc, ref in unit.members:
        w.open("Substans")
        w.leaf("Substans", name)
        if atc is not None:
            w.atc("Atc", atc)
        if ref is not None:
            w.leaf("RefVirkestoff", ref)
        w.close("Substans")
    w.close("Substansgruppe")


def _write_interaksjon(w: _Xml, gen: _Gen, a: _Unit, b: _Unit) -> None:
    rng = gen.rng
    relevans, relevans_dn = rng.choices(
        (("1", "Bør unngås"), ("2", "Forholdsregler bør tas"), ("3", "Ingen tiltak nødvendig")),
        weights=(15, 70, 15),
    )[0]
    situation, consequence, mechanism, handling = _interaction_texts(
        gen, a.display, b.display, relevans
    )
    w.begin(gen, "Interaksjon")
    w.open("Interaksjon")
    w.leaf("Id", gen.id())
    w.cs("Relevans", relevans, relevans_dn)
    if situation is not None:
        w.leaf("Situasjonskriterium", situation)
    w.leaf("KliniskKonsekvens", consequence)
    if mechanism is not None:
        w.leaf("Interaksjonsmekanisme", mechanism)
    w.cs(
        "Kildegrunnlag",
        *rng.choices(
            (
                ("1", "Interaksjonsstudier"),
                ("2", "Kasusrapporter"),
                ("3", "Interaksjonsstudier og kasusrapporter"),
                ("4", "Indirekte data"),
            ),
            weights=(25, 15, 7, 53),
        )[0],
    )
    if handling is not None:
        w.leaf("Handtering", handling)
    if relevans != "3" or rng.random() < 0.5:
        for code, dn in (("1", "Allmennlege"), ("2", "Spesialist"), ("3", "Sykehus")):
            w.cv("Visningsregel", code, "7442", dn)
        if rng.random() < 0.35:
            w.cv("Visningsregel", "4", "7442", "Apotek")
    _write_referanser(w, gen, a, b)
    _write_substansgruppe(w, a)
    _write_substansgruppe(w, b)
    w.close("Interaksjon")
    w.close("OppfInteraksjon")


def _write_interaksjoner(
    w: _Xml, gen: _Gen, cat: _Catalogue, n_int: int, n_not: int
) -> tuple[int, int]:
    """Interactions between substance groups, with not-assessed ATC codes interleaved."""
    rng = gen.rng
    product_codes = list({f.atc.code: f.atc for f in cat.families if f.atc is not None}.values())
    not_assessed = rng.sample(product_codes, min(n_not, max(1, len(product_codes) // 3)))
    kinds = _interaction_units(
        gen, cat.tree, cat.moieties, cat.unmarketed, cat.herbals, {c.code for c in not_assessed}
    )
    shares = list(accumulate(share for share, _, _ in kinds))

    def pick() -> _Unit:
        _, units, cum = kinds[bisect(shares, rng.random() * shares[-1])]
        return rng.choices(units, cum_weights=cum)[0]

    total = n_int + len(not_assessed)
    positions = set(rng.sample(range(total), len(not_assessed)))
    pending = iter(not_assessed)
    w.open("KatInteraksjon")
    for i in range(total):
        if i in positions:
            w.begin(gen, "Interaksjon")
            w.open("InteraksjonIkkeVurdert")
            w.atc("Atc", next(pending))
            w.close("InteraksjonIkkeVurdert")
            w.close("OppfInteraksjon")
            continue
        a = pick()
        b = pick()
        while b is a:
            b = pick()
        _write_interaksjon(w, gen, a, b)
    w.close("KatInteraksjon")
    return n_int, len(not_assessed)


def _write_strdosering(w: _Xml, gen: _Gen, cat: _Catalogue) -> int:
    structured = [k for k in cat.kortdoser if k.phases][: cat.structured_kortdoser]
    w.open("KatStrDosering")
    for k in structured:
        w.begin(gen, "StrDosering")
        w.open("Kortdose")
        w.cv("Kortdose", k.code, "7478", k.dn)
        w.leaf("BeskrivelseTerm", k.template)
        for number, (amount, days) in enumerate(k.phases, start=1):
            w.open("Legemiddelforbruk")
            w.leaf("Lopenr", str(number))
            w.leaf("Mengde", _num(amount))
            w.leaf("Periode", "P1D")
            if days is not None:
                w.leaf("Iterasjoner", str(days))
            w.close("Legemiddelforbruk")
        w.close("Kortdose")
        w.close("OppfStrDosering")
    w.close("KatStrDosering")
    return len(structured)


def write_synthetic(
    out: str | os.PathLike[str], scale: float = 1.0, seed: int = 0
) -> dict[str, int]:
    """Write a synthetic FEST M30 (2.5.1, namespace 2014-12-01) catalogue; return counts per
    catalogue.

    ``scale`` multiplies the production entry counts (1.0 gives about 110 MB); ``seed`` fixes
    every random choice, so equal arguments give byte-identical files.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    gen = _Gen(seed, scale)
    cat = _build(gen)
    counts: dict[str, int] = {}
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        w = _Xml(fh)
        w.raw('<?xml version="1.0" encoding="utf-8"?>')
        w.open("FEST", f' xmlns="{NS_M30}"')
        w.leaf("HentetDato", gen.hentet.isoformat())
        counts["LegemiddelMerkevare"] = _write_merkevare(w, gen, cat)
        counts["Legemiddelpakning"] = _write_pakninger(w, gen, cat)
        counts["Virkestoff"], counts["VirkestoffMedStyrke"] = _write_virkestoff(w, gen, cat)
        counts["LegemiddelVirkestoff"] = _write_legemiddelvirkestoff(w, gen, cat)
        counts["Handelsvare"] = _write_handelsvare(w, gen, cat, gen.count("Handelsvare"))
        counts["Refusjonshjemmel"] = _write_refusjon(w, gen, cat)
        counts["Vilkar"] = _write_vilkar(w, gen, cat)
        counts["VarselSlv"] = _write_varsel(w, gen, cat, gen.count("VarselSlv"))
        _write_kodeverk(w, gen, cat)
        counts["Byttegruppe"] = _write_byttegrupper(w, gen, cat)
        counts["Legemiddeldose"] = _write_doser(w, gen, cat)
        counts["Interaksjon"], counts["InteraksjonIkkeVurdert"] = _write_interaksjoner(
            w, gen, cat, gen.count("Interaksjon"), gen.count("InteraksjonIkkeVurdert")
        )
        counts["Kortdose"] = _write_strdosering(w, gen, cat)
        w.close("FEST")
        w.raw("\n")
        w.flush()
    return {key: counts[key] for key in _BASE_COUNTS}
