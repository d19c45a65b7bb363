"""Medication lists drawn from the fixture catalogue, for the property tests of ``check``
(``test_ix_properties``) and of the checks' fast paths (``test_ix_fast_paths``)."""

from datetime import date, timedelta

from hypothesis import strategies as st

from interactions import Dosage, Medication
from tests.interactions.helpers import as_needed, fixed, med

DRUGS = (
    "PK_MAREVAN",
    "PK_IBUX",
    "PK_VOLTAREN",
    "PK_PARACET",
    "PK_PARALGIN_FORTE",
    "PK_ZOCOR",
    "PK_SIMVASTATIN_KRKA",
    "GG_SIMVASTATIN_20",
    "PK_KLACID",
    "P_PERIKUM",
    "P_GINKGO",
    "P_ARNICA",
    "PK_ZYRTEC",
    "PK_NORVASC",
    "PK_IMOVANE",
    "PK_ZYPREXA",
    "P_SEROQUEL",
    "PK_METHOTREXATE",
    "PK_INHIXA",
    "P_DIVISUN",
    "P_BETANEKOL",
    "P_GALAFOLD",
    "ID_CODEINE",
    "DU_PARACET",
)
DOSAGES: tuple[Dosage | None, ...] = (
    None,
    fixed(1),
    fixed(2),
    as_needed(2, max_per_24h=8),
    fixed(1, "ml"),
)

days = st.one_of(st.none(), st.integers(0, 60).map(lambda n: date(2026, 1, 1) + timedelta(n)))


@st.composite
def entries(
    draw: st.DrawFn,
    names: tuple[str, ...] = DRUGS,
    dosages: tuple[Dosage | None, ...] = DOSAGES,
) -> list[Medication]:
    """Up to eight distinct drugs of ``names``, each with a dosage of ``dosages`` and a start
    and stop day (either may be absent; a stop never before its start)."""
    drugs = draw(st.lists(st.sampled_from(names), unique=True, max_size=8))
    medications = []
    for drug in drugs:
        start = draw(days)
        stop = draw(days)
        if start and stop and stop < start:
            start, stop = stop, start
        medications.append(med(drug, dosage=draw(st.sampled_from(dosages)), start=start, stop=stop))
    return medications
