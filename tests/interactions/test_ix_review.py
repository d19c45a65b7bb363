"""The medication review engine: every criterion of the shipped files fires on a hand-built list
that meets it and stays silent on one that does not; renal rules, ACB and the indicators."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from interactions import Medication
from interactions.medication import Patient
from interactions.review import ReviewResult, review
from interactions.review_rules import load_review_criteria, shipped_review_criteria
from tests.interactions.review_helpers import TODAY, med, patient


@dataclass(frozen=True)
class Case:
    fires: list[Medication]
    silent: list[Medication]
    patient: Patient = field(default_factory=patient)
    silent_patient: Patient | None = None


RECENT = TODAY - timedelta(days=10)

# One case per criterion: the list that meets it, and the nearest list that does not.
CASES: dict[str, Case] = {
    "NORGEP-NH:1": Case([med("a", "N02AJ06")], [med("a", "N02AJ06", use="as-needed")]),
    "NORGEP-NH:2": Case([med("a", "N06AA09")], [med("a", "N06AB04")]),
    "NORGEP-NH:3": Case([med("a", "M01AE01")], [med("a", "M01AH01")]),
    "NORGEP-NH:4": Case([med("a", "R06AD02")], [med("a", "R06AE07")]),
    "NORGEP-NH:5": Case([med("a", "N05BA01")], [med("a", "N05BA01", use="as-needed")]),
    "NORGEP-NH:6": Case([med("a", "N05BA04", mg_a_day=45)], [med("a", "N05BA04", mg_a_day=30)]),
    "NORGEP-NH:7": Case([med("a", "N05CF01", mg_a_day=7.5)], [med("a", "N05CF01", mg_a_day=5)]),
    "NORGEP-NH:8": Case([med("a", "N05CD02")], [med("a", "N05CD02", use="as-needed")]),
    "NORGEP-NH:9": Case([med("a", "N05CD03")], [med("a", "N05CD03", use="as-needed")]),
    "NORGEP-NH:10": Case([med("a", "N05CM02")], [med("a", "N05CM02", use="as-needed")]),
    "NORGEP-NH:11": Case([med("a", "N05CF02")], [med("a", "N05CF02", use="as-needed")]),
    "NORGEP-NH:12": Case(
        [med("a", "B01AA03"), med("b", "M01AE01")], [med("a", "B01AA03"), med("b", "N02BE01")]
    ),
    "NORGEP-NH:13": Case(
        [med("a", "B01AA03"), med("b", "N06AB04")], [med("a", "B01AA03"), med("b", "N06AX11")]
    ),
    "NORGEP-NH:14": Case(
        [med("a", "B01AA03"), med("b", "J01FA09")], [med("a", "B01AA03"), med("b", "J01CA04")]
    ),
    "NORGEP-NH:15": Case(
        [med("a", "M01AH01"), med("b", "C09CA01")], [med("a", "N02BE01"), med("b", "C09CA01")]
    ),
    "NORGEP-NH:16": Case(
        [med("a", "M01AE01"), med("b", "C03CA01")], [med("a", "M01AE01"), med("b", "C08CA01")]
    ),
    "NORGEP-NH:17": Case(
        [med("a", "M01AB05"), med("b", "H02AB06")], [med("a", "M01AB05"), med("b", "R03BA02")]
    ),
    "NORGEP-NH:18": Case(
        [med("a", "M01AE01"), med("b", "N06AX16")], [med("a", "M01AE01"), med("b", "N06AX11")]
    ),
    "NORGEP-NH:19": Case(
        [med("a", "C09AA05"), med("b", "C03DA01")], [med("a", "C09AA05"), med("b", "C03CA01")]
    ),
    "NORGEP-NH:20": Case(
        [med("a", "C07AB02"), med("b", "C08DA01")], [med("a", "C07AB02"), med("b", "C08CA01")]
    ),
    "NORGEP-NH:21": Case(
        [med("a", "J01FA09"), med("b", "C10AA01")], [med("a", "J01FA10"), med("b", "C10AA01")]
    ),
    "NORGEP-NH:22": Case(
        [med("a", "M05BA04"), med("b", "A02BC01")], [med("a", "M05BA04"), med("b", "A02BA02")]
    ),
    "NORGEP-NH:23": Case(
        [med("a", "N05AH04"), med("b", "N06AX11"), med("c", "N05CF01")],
        [med("a", "N05AH04"), med("b", "N06AX11"), med("c", "N05AN01")],
    ),
    "NORGEP-NH:24": Case(
        [med("a", "G04BD04"), med("b", "N06AA09")], [med("a", "G04BD04"), med("b", "N06AB04")]
    ),
    "NORGEP-NH:25": Case([med("a", "N05AX08")], [med("a", "N05AX08", start=RECENT)]),
    "NORGEP-NH:26": Case([med("a", "N05BA04")], [med("a", "N05BA04", start=RECENT)]),
    "NORGEP-NH:27": Case([med("a", "N05CF02")], [med("a", "N05CF02", start=RECENT)]),
    "NORGEP-NH:28": Case([med("a", "N06AB04")], [med("a", "N06AB04", start=RECENT)]),
    "NORGEP-NH:29": Case([med("a", "N06DA02")], [med("a", "N06DA02", start=RECENT)]),
    "NORGEP-NH:30": Case([med("a", "N06DX01")], [med("a", "N06DX01", start=RECENT)]),
    "NORGEP-NH:31": Case([med("a", "C10AA05")], [med("a", "C10AA05", start=RECENT)]),
    "NORGEP-NH:32": Case(
        [med("a", "M05BA04", start=date(2018, 1, 1))], [med("a", "M05BA04", start=date(2024, 1, 1))]
    ),
    "NORGEP-NH:33": Case([med("a", "A02BC02")], [med("a", "A02BC02", start=RECENT)]),
    "NORGEP-NH:34": Case([med("a", "B01AC06")], [med("a", "B01AC06", start=RECENT)]),
    "STOPP:A3": Case(
        [med("a", "N06AB04"), med("b", "N06AB10")],
        [med("a", "N06AB04"), med("b", "N06AB10", use="as-needed")],
    ),
    "STOPP:B3": Case(
        [med("a", "C07AB02"), med("b", "C08DA01")], [med("a", "C07AB02"), med("b", "C08CA01")]
    ),
    "STOPP:B11": Case([med("a", "C02AC05")], [med("a", "C02CA04")]),
    "STOPP:C1": Case([med("a", "B01AC06", mg_a_day=150)], [med("a", "B01AC06", mg_a_day=100)]),
    "STOPP:C6": Case([med("a", "B01AC05")], [med("a", "B01AC04")]),
    "STOPP:C10": Case(
        [med("a", "M01AE01"), med("b", "B01AF02")], [med("a", "N02BE01"), med("b", "B01AF02")]
    ),
    "STOPP:C13": Case(
        [med("a", "B01AE07"), med("b", "C08DB01")], [med("a", "B01AE07"), med("b", "C08CA01")]
    ),
    "STOPP:C14": Case(
        [med("a", "B01AF02"), med("b", "C01BD01")], [med("a", "B01AA03"), med("b", "C01BD01")]
    ),
    "STOPP:D8": Case(
        [med("a", "N05BA04", start=TODAY - timedelta(days=28))],
        [med("a", "N05BA04", start=TODAY - timedelta(days=27))],
    ),
    "STOPP:D11": Case(
        [med("a", "N05CF01", start=TODAY - timedelta(days=14))],
        [med("a", "N05CF01", start=TODAY - timedelta(days=13))],
    ),
    "STOPP:D18": Case(
        [med("a", "N06DA02"), med("b", "C07AB02")], [med("a", "N06DA02"), med("b", "C08CA01")]
    ),
    "STOPP:E1": Case(
        [med("a", "C01AA05", mg_a_day=0.125)],
        [med("a", "C01AA05", mg_a_day=0.0625)],
        patient(egfr=25),
    ),
    "STOPP:E2": Case([med("a", "B01AE07")], [med("a", "B01AE07")], patient(egfr=25), patient()),
    "STOPP:E3": Case([med("a", "B01AF01")], [med("a", "B01AF01")], patient(egfr=12), patient()),
    "STOPP:E4": Case([med("a", "M01AE01")], [med("a", "M01AE01")], patient(egfr=45), patient()),
    "STOPP:E5": Case([med("a", "M04AC01")], [med("a", "M04AC01")], patient(egfr=8), patient()),
    "STOPP:E6": Case([med("a", "A10BA02")], [med("a", "A10BA02")], patient(egfr=25), patient()),
    "STOPP:E7": Case([med("a", "C03DA01")], [med("a", "C03DA01")], patient(egfr=25), patient()),
    "STOPP:E8": Case(
        [med("a", "J01XE01", use="course")],
        [med("a", "J01XE01", use="course")],
        patient(egfr=40),
        patient(egfr=45),
    ),
    "STOPP:E9": Case([med("a", "M05BA04")], [med("a", "M05BA04")], patient(egfr=25), patient()),
    "STOPP:E10": Case([med("a", "L04AX03")], [med("a", "L04AX03")], patient(egfr=25), patient()),
    "STOPP:J1": Case([med("a", "A10BB12")], [med("a", "A10BB09")]),
    "STOPP:L2": Case([med("a", "N02AA05")], [med("a", "N02AA05"), med("b", "A06AD11")]),
    "STOPP:M1": Case(
        [med("a", "G04BD08"), med("b", "N05AH03")], [med("a", "G04BD08"), med("b", "N05AX08")]
    ),
    "START:H9": Case([med("a", "L04AX03")], [med("a", "L04AX03"), med("b", "B03BB01")]),
    "START:K2": Case([med("a", "N02AB03")], [med("a", "N02AB03", use="as-needed")]),
    # criteria that need clinical information: listed as not assessed (when the part the list
    # can decide — use, dose, duration — is met), never as findings
    "STOPP:A1": Case([med("a", "C07AB02")], [med("a", "C07AB02")], patient(), patient(age=60)),
    "STOPP:A2": Case([med("a", "C07AB02")], [med("a", "C07AB02")], patient(), patient(age=60)),
    "STOPP:B7": Case([med("a", "C03CA01")], [med("a", "C03AA03")]),
    "STOPP:C16": Case([med("a", "B01AC06")], [med("a", "B01AC04")]),
    "STOPP:D10": Case(
        [med("a", "N05CD02", start=TODAY - timedelta(days=14))],
        [med("a", "N05CD02", start=TODAY - timedelta(days=13))],
    ),
    "STOPP:D12": Case([med("a", "N05AD01")], [med("a", "N05AH04")]),
    "STOPP:F2": Case([med("a", "A02BC05")], [med("a", "A02BC05", start=RECENT)]),
    "STOPP:K1": Case([med("a", "N05BA04")], [med("a", "N05CF01")]),
    "STOPP:K2": Case([med("a", "N05AH04")], [med("a", "N05AN01")]),
    "STOPP:K4": Case([med("a", "N05CF01")], [med("a", "N05CD02")]),
    "STOPP:K7": Case([med("a", "N02AA01")], [med("a", "N02BE01")]),
    "STOPP:L6": Case([med("a", "N02BE01", mg_a_day=3000)], [med("a", "N02BE01", mg_a_day=2000)]),
    "START:B2": Case([], [], patient(), patient(age=64)),
    "START:C1": Case([], [], patient(), patient(age=64)),
    "START:H3": Case([], [], patient(), patient(age=64)),
}


def _criterion_ids() -> list[str]:
    return [c.id for s in shipped_review_criteria().sets for c in s.criteria]


def _kind(criterion_id: str) -> str:
    return shipped_review_criteria().criterion(criterion_id).kind


def _hits(result: ReviewResult, criterion_id: str) -> list[tuple[str, ...]]:
    bucket = result.not_assessed if _kind(criterion_id) == "clinical" else result.findings
    return [item.medications for item in bucket if item.criterion == criterion_id]


def test_every_criterion_in_the_files_has_a_case() -> None:
    assert sorted(CASES) == sorted(_criterion_ids())


def test_norgep_nh_is_numbered_1_to_34_as_in_the_published_table() -> None:
    norgep = [c.id for c in shipped_review_criteria().sets[0].criteria]
    assert norgep == [f"NORGEP-NH:{n}" for n in range(1, 35)]


@pytest.mark.parametrize("criterion_id", sorted(CASES))
def test_criterion_fires_on_a_list_that_meets_it(criterion_id: str) -> None:
    case = CASES[criterion_id]
    hits = _hits(review(case.fires, case.patient, today=TODAY), criterion_id)
    assert hits, f"{criterion_id} did not fire"
    assert set(hits[0]) <= {m.id for m in case.fires}


@pytest.mark.parametrize("criterion_id", sorted(CASES))
def test_criterion_stays_silent_on_a_list_that_does_not(criterion_id: str) -> None:
    case = CASES[criterion_id]
    result = review(case.silent, case.silent_patient or case.patient, today=TODAY)
    assert _hits(result, criterion_id) == []
    # … and is not listed as undecidable either: the list gives every fact it needs
    assert criterion_id not in {n.criterion for n in result.not_assessed}


def test_a_finding_carries_criterion_set_medications_summary_detail_and_source() -> None:
    result = review([med("m1", "N05BA04", mg_a_day=45)], patient(), today=TODAY)
    finding = next(f for f in result.findings if f.criterion == "NORGEP-NH:6")
    assert finding.as_json()["set"] == "NORGEP-NH"
    assert finding.medications == ("m1",)
    assert "30 mg" in finding.detail
    assert finding.source["citation"] == "NORGEP-NH, Table I, criterion 6"
    assert finding.source["verified"] is True and finding.source["reviewed"] is False


def test_stopp_a3_duplicates_count_daily_regular_use_only_as_version_3_says() -> None:
    # v3 A3: "for daily regular use (as distinct from PRN use)"; ACE inhibitor + ARB are two classes
    as_needed = [med("a", "M01AE01", use="as-needed"), med("b", "M01AB05", use="as-needed")]
    assert not _hits(review(as_needed, patient(), today=TODAY), "STOPP:A3")
    assert not _hits(
        review([med("a", "C09AA05"), med("b", "C09CA01")], patient(), today=TODAY), "STOPP:A3"
    )
    assert _hits(
        review([med("a", "C09AA05"), med("b", "C09AA02")], patient(), today=TODAY), "STOPP:A3"
    )
    unknown = review([med("a", "N02AA05"), med("b", "N02AB03", use=None)], patient(), today=TODAY)
    assert not [f for f in unknown.findings if f.criterion == "STOPP:A3"]
    (note,) = [n for n in unknown.not_assessed if n.criterion == "STOPP:A3"]
    assert note.medications == ("a", "b")
    assert note.missing == ("the use (regular, course or as-needed) of b",)


def test_stopp_start_criteria_carry_their_version_3_number_and_the_copy_read() -> None:
    stopp_start = shipped_review_criteria().sets[1]
    for criterion in stopp_start.criteria:
        source = criterion.source
        assert source.verified, criterion.id
        assert source.citation.startswith("STOPP/START version 3"), criterion.id
        section, number = criterion.id.split(":")[1][0], criterion.id.split(":")[1][1:]
        assert f"Section {section} (" in source.citation and source.citation.endswith(number)
        assert "version 2" not in source.citation
        # the note names the copy read, and says it is not the publisher's appendix
        assert "Read on 2026-12-05" in (source.note or "") or "read on 2026-12-05" in (
            source.note or ""
        )
    transcribed = [c for c in stopp_start.criteria if "github.com" in c.source.url]
    assert all("transcription" in (c.source.note or "") for c in transcribed)


def test_version_3_thresholds_replace_version_2_ones() -> None:
    # C1: aspirin above 100 mg a day (v2: 160 mg)
    assert _hits(review([med("a", "B01AC06", mg_a_day=150)], patient(), today=TODAY), "STOPP:C1")
    # E1: digoxin at 125 micrograms a day or more (at, not only above)
    e1 = review([med("a", "C01AA05", mg_a_day=0.125)], patient(egfr=29), today=TODAY)
    (finding,) = [f for f in e1.findings if f.criterion == "STOPP:E1"]
    assert "at 0.125 mg a day or more" in finding.detail
    # D8: benzodiazepines for 4 weeks or longer, i.e. from day 28
    d8 = review([med("a", "N05BA04", start=TODAY - timedelta(days=28))], patient(), today=TODAY)
    assert _hits(d8, "STOPP:D8") == [("a",)]
    # version 2 numbers are gone
    ids = set(_criterion_ids())
    assert not {"STOPP:C8", "STOPP:D5", "STOPP:N2", "START:H2", "START:A1"} & ids


def test_a_clinical_criterion_is_listed_only_when_the_part_the_list_decides_is_met() -> None:
    # L6 needs the BMI or liver disease, but the 3 g dose is on the list
    high = review([med("a", "N02BE01", mg_a_day=4000)], patient(), today=TODAY)
    (note,) = [n for n in high.not_assessed if n.criterion == "STOPP:L6"]
    assert note.medications == ("a",)
    assert note.missing == ("body-mass index or chronic liver disease",)
    low = review([med("a", "N02BE01", mg_a_day=1000)], patient(), today=TODAY)
    assert "STOPP:L6" not in {n.criterion for n in low.not_assessed}
    # an entry whose dose is unknown is listed with the dose among what is missing
    unknown = review([med("a", "N02BE01")], patient(), today=TODAY)
    (note,) = [n for n in unknown.not_assessed if n.criterion == "STOPP:L6"]
    assert note.missing[0] == "body-mass index or chronic liver disease"
    assert any("daily dose of a" in m for m in note.missing[1:])


def test_findings_follow_the_sources_order_letter_then_number() -> None:
    result = review(
        [
            med("a", "C02AC05"),
            med("b", "C07AB02"),
            med("c", "C08DA01"),
            med("d", "B01AC05"),
            med("e", "M01AE01"),
            med("f", "B01AF02"),
        ],
        patient(),
        today=TODAY,
    )
    stopp = [f.criterion for f in result.findings if f.set == "STOPP"]
    assert stopp.index("STOPP:B3") < stopp.index("STOPP:B11")
    assert stopp.index("STOPP:C6") < stopp.index("STOPP:C10") < stopp.index("STOPP:C14")
    norgep = [f.criterion for f in result.findings if f.set == "NORGEP-NH"]
    assert norgep == sorted(norgep, key=lambda c: int(c.split(":")[1]))


def test_unknown_use_dose_or_start_is_not_assessed_never_guessed() -> None:
    result = review(
        [med("a", "N05BA01", use=None), med("b", "N05BA04"), med("c", "N05AX08", start=None)],
        patient(),
        today=TODAY,
    )
    missing = {(n.criterion, n.medications): n.missing for n in result.not_assessed}
    assert "the use (regular, course or as-needed) of a" in missing[("NORGEP-NH:5", ("a",))]
    assert any("daily dose of b" in m for m in missing[("NORGEP-NH:6", ("b",))])
    assert missing[("NORGEP-NH:25", ("c",))] == ("the start date of c",)
    fired = {f.criterion for f in result.findings}
    assert not {"NORGEP-NH:5", "NORGEP-NH:6", "NORGEP-NH:25"} & fired


def test_a_stopped_entry_is_not_reviewed() -> None:
    stopped = med("a", "N05BA01", stop=TODAY - timedelta(days=1))
    assert review([stopped], patient(), today=TODAY).findings == ()


def test_a_set_does_not_apply_below_its_population_age() -> None:
    result = review([med("a", "N05BA01")], patient(age=66), today=TODAY)
    assert not [f for f in result.findings if f.set == "NORGEP-NH"]
    assert list(review([med("a", "N05BA01")], patient(age=None), today=TODAY).findings)


# -- renal rules from dose_limits.json ------------------------------------------------------


def test_renal_rule_of_the_dose_limit_file_fires_below_its_threshold() -> None:
    result = review([med("a", "A10BA02")], patient(egfr=25), today=TODAY)
    renal = [f for f in result.findings if f.set == "RENAL"]
    assert [f.criterion for f in renal] == ["RENAL:metformin-oral-renal-30"]
    assert "contraindicated" in renal[0].summary
    assert "eGFR 25 ml/min measured 2026-12-05" in renal[0].detail


def test_renal_rule_picks_the_range_the_patient_is_in() -> None:
    result = review([med("a", "N03AX16")], patient(egfr=40), today=TODAY)
    assert [f.criterion for f in result.findings if f.set == "RENAL"] == [
        "RENAL:pregabalin-oral-crcl-30-59"
    ]
    assert not list(review([med("a", "N03AX16")], patient(egfr=90), today=TODAY).findings)


def test_missing_or_stale_renal_function_is_flagged_not_assessed() -> None:
    missing = review([med("a", "A10BA02")], patient(egfr=None), today=TODAY).not_assessed
    assert [n.set for n in missing if n.medications == ("a",)].count("RENAL") == 1
    stale = review([med("a", "A10BA02")], patient(egfr=25, measured=date(2026, 1, 2)), today=TODAY)
    assert not [f for f in stale.findings if f.set == "RENAL"]
    (note,) = [n for n in stale.not_assessed if n.set == "RENAL"]
    assert "eGFR 25 ml/min measured 2026-01-02" in note.missing[0]
    assert "within 90 days" in note.missing[0]


# -- ACB and indicators ---------------------------------------------------------------------


def test_acb_sums_each_entrys_score_and_names_the_entries() -> None:
    result = review(
        [med("a", "N06AA09"), med("b", "C07AB02"), med("c", "N02BE01"), med("d", "N03AF01")],
        patient(),
        today=TODAY,
    )
    assert result.acb.score == 3 + 1 + 2
    assert result.acb.medications == ("a", "b", "d")
    assert result.as_json()["acb"]["score"] == 6


# The entries this revision added after reading the 2012 list (in a copy: see the file's note),
# each alone on a list, with the score the list gives it.
ACB_ADDED = {
    "R06AD01": 1,  # alimemazine
    "A03AX08": 1,  # alverine
    "N05AH05": 1,  # asenapine
    "N05BA05": 1,  # clorazepate
    "N05AX14": 1,  # iloperidone
    "N05AX13": 1,  # paliperidone
    "C01BA01": 1,  # quinidine
    "A03BA04": 2,  # belladonna total alkaloids
    "M03BX08": 2,  # cyclobenzaprine
    "N05AH01": 2,  # loxapine
    "N05AE02": 2,  # molindone
    "N06AA17": 3,  # amoxapine
    "R06AB01": 3,  # brompheniramine
    "R06AA08": 3,  # carbinoxamine
    "A03AA07": 3,  # dicycloverine
    "R06AA11": 3,  # dimenhydrinate
    "R06AE05": 3,  # meclozine
    "R06AC01": 3,  # mepyramine
    "N04AA04": 3,  # procyclidine
    "N05AA03": 3,  # promazine
    "G04BD06": 3,  # propiverine
}


@pytest.mark.parametrize(("code", "score"), sorted(ACB_ADDED.items()))
def test_acb_counts_each_entry_added_from_the_2012_list(code: str, score: int) -> None:
    result = review([med("a", code), med("b", "N02BE01")], patient(), today=TODAY)
    assert result.acb.score == score
    assert result.acb.medications == ("a",)


def test_acb_gives_prednisolone_no_score_as_the_2012_list_does_not_name_it() -> None:
    result = review([med("a", "H02AB06"), med("b", "H02AB07")], patient(), today=TODAY)
    assert result.acb.score == 1  # prednisone (1) is on the list; prednisolone is not
    assert result.acb.medications == ("b",)


def test_norgep_nh_marked_anticholinergics_are_exactly_the_acb_score_3_entries() -> None:
    criteria = shipped_review_criteria()
    (norgep,) = [s for s in criteria.sets if s.set == "NORGEP-NH"]
    group = norgep.groups["anticholinergic_marked"]
    assert set(group.atc) == {s.atc for s in criteria.acb.scores if s.score == 3}
    assert not group.except_


@pytest.mark.parametrize(
    ("code", "fires"),
    [
        ("R06AE05", True),  # meclozine, ACB 3: now counted
        ("N05AB03", True),  # perphenazine, ACB 3: now counted
        ("G04BD12", False),  # mirabegron, a beta-3 agonist: no longer counted with G04BD
        ("A03BA04", False),  # belladonna alkaloids, ACB 2: no longer counted with A03BA
    ],
)
def test_norgep_nh_24_counts_acb_score_3_drugs_only(code: str, fires: bool) -> None:
    result = review([med("a", code), med("b", "N06AA09")], patient(), today=TODAY)
    found = [f for f in result.findings if f.criterion == "NORGEP-NH:24"]
    assert bool(found) is fires
    if fires:
        assert found[0].medications == ("a", "b")


def test_indicators_count_psychotropics_antipsychotics_and_fall_risk_drugs() -> None:
    result = review(
        [
            med("a", "N05AH04"),
            med("b", "N05BA04", use="as-needed"),
            med("c", "N02AA01"),
            med("d", "N05AN01"),
        ],
        patient(),
        today=TODAY,
    )
    indicators = result.as_json()["indicators"]
    assert indicators["psychotropics"] == {"count": 1, "regular": ["a"], "other": ["b"]}
    assert indicators["antipsychotics"]["regular"] == ["a"]
    assert indicators["fall_risk"]["regular"] == ["a", "c"]


# -- the files ------------------------------------------------------------------------------


def test_every_criterion_cites_a_source_and_is_unsigned() -> None:
    criteria = shipped_review_criteria()
    for criteria_set in criteria.sets:
        for criterion in criteria_set.criteria:
            assert criterion.source.url.startswith("https://")
            assert criterion.reviewed_by is None and criterion.reviewed_on is None
            if not criterion.source.verified:
                assert (criterion.source.note or "").startswith("NOT VERIFIED")
    assert criteria.acb.reviewed_by is None and criteria.indicators.reviewed_by is None


def _copy_rules(tmp_path: Path) -> Path:
    source = Path(__file__).parents[2] / "interactions" / "rules"
    for path in source.glob("review_*.json"):
        (tmp_path / path.name).write_text(path.read_text("utf-8"), "utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["criteria"][0].update(id="NORGEP-NH:one"), "is not SET:number"),
        (lambda c: c["criteria"][1].update(id="NORGEP-NH:1"), "unique"),
        (lambda c: c["criteria"][0].update(drugs="no_such_group"), "unknown groups"),
        (lambda c: c["criteria"][0].pop("reviewed_by"), "reviewed_by"),
        (lambda c: c["criteria"][0]["source"].update(verified=False), "NOT VERIFIED"),
        (lambda c: c["criteria"][0].pop("drugs"), "lacks one of its fields"),
        (lambda c: c["groups"]["tca"].update(atc=["not-a-code"]), "not ATC codes"),
    ],
)
def test_a_criteria_file_that_breaks_the_schema_is_rejected(
    tmp_path: Path, change: object, message: str
) -> None:
    folder = _copy_rules(tmp_path)
    path = folder / "review_norgep_nh.json"
    content = json.loads(path.read_text("utf-8"))
    change(content)  # type: ignore[operator]
    path.write_text(json.dumps(content), "utf-8")
    with pytest.raises(ValidationError, match=message):
        load_review_criteria(folder)


# -- property -------------------------------------------------------------------------------

RELATED = sorted({m.drug.atc or "" for case in CASES.values() for m in case.fires + case.silent})
UNRELATED = ["A12AA04", "A11CC05", "B03BA01", "S01XA20", "D02AC"]


def _unrelated_to_every_criterion(code: str) -> bool:
    criteria = shipped_review_criteria()
    groups = [g for s in criteria.sets for g in s.groups.values()]
    return not any(g.matches((code,)) for g in groups)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(RELATED), max_size=8, unique=True),
    st.sampled_from(UNRELATED),
    st.sampled_from(["regular", "as-needed", None]),
)
def test_adding_an_unrelated_drug_never_removes_a_finding(
    codes: list[str], unrelated: str, use: str | None
) -> None:
    assert _unrelated_to_every_criterion(unrelated)
    medications = [med(f"m{i}", code) for i, code in enumerate(codes)]
    before = {
        (f.criterion, f.medications) for f in review(medications, patient(), today=TODAY).findings
    }
    extra = med("zz", unrelated, use=use)
    after = {
        (f.criterion, f.medications)
        for f in review([*medications, extra], patient(), today=TODAY).findings
    }
    assert before <= after


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(RELATED), min_size=1, max_size=8, unique=True), st.randoms())
def test_the_review_does_not_depend_on_the_order_of_the_list(codes: list[str], random) -> None:
    medications = [med(f"m{i}", code) for i, code in enumerate(codes)]
    shuffled = list(medications)
    random.shuffle(shuffled)
    first = review(medications, patient(), today=TODAY).as_json()
    assert review(shuffled, patient(), today=TODAY).as_json() == first


# -- languages ------------------------------------------------------------------------------


def test_every_criterion_has_a_bokmal_summary_the_page_can_choose() -> None:
    criteria = shipped_review_criteria()
    for criteria_set in criteria.sets:
        for criterion in criteria_set.criteria:
            assert criterion.summary_nb.strip() and criterion.summary_nb != criterion.summary
            assert criteria.summary_in(criterion.id, "nb") == criterion.summary_nb
            assert criteria.summary_in(criterion.id, "en") == criterion.summary
    assert criteria.summary_in("NORGEP-NH:6", "nb") == "Oksazepam over 30 mg i døgnet bør unngås"
    # a RENAL finding's summary is written by the engine, not a criteria file
    assert criteria.summary_in("RENAL:metformin-oral-renal-30", "nb") is None


def test_the_review_json_keeps_the_english_summary_of_the_contract() -> None:
    result = review([med("m1", "N05BA04", mg_a_day=45)], patient(), today=TODAY).as_json()
    finding = next(f for f in result["findings"] if f["criterion"] == "NORGEP-NH:6")
    assert finding["summary"] == "Oxazepam above 30 mg a day should be avoided"
    assert "summary_nb" not in finding
