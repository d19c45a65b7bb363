"""The capacity model for Norway (docs/scaling.md, issue #21): published national volumes times
the per-request costs measured by ``bench/costs.py``.

  .venv/bin/python bench/costs.py > costs.json
  .venv/bin/python bench/capacity.py costs.json

Every volume below carries its source; every assumption is marked as one and is a parameter, so
the model can be rerun with better figures. Prints one JSON object: the requests per second on
an average day and in the 08:00 peak hour, the application and PostgreSQL cores they need, the
WAL and storage per day, per year and per patient-year, and the sizing with its headroom.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# Published figures (docs/scaling.md lists the sources with their addresses).
POPULATION = 5_500_000  # SSB, rounded (the figure)
SHARE_WITH_A_PRESCRIPTION = 0.70  # FHI, Reseptregisteret 2014-2018: 70 % in 2018
E_PRESCRIPTIONS_PER_YEAR = 33_000_000  # Direktoratet for e-helse, e-helsemonitor: 2023
PRESCRIPTIONS_DISPENSED_PER_YEAR = 63_000_000  # Apotekforeningen: all prescriptions, 2021
MULTIDOSE_USERS = 96_750  # Apotekforeningen: September 2021
NURSING_HOME_RESIDENTS = 38_000  # SSB, "Sykehjem og hjemmetjenesten i Norge", 2023
DRUGS_PER_RESIDENT = 7  # Demensplan 2020, as reported by NRK (2019)

# Assumptions (ours; change them here).
ASSUMED = {
    "doses_per_drug_per_day": 1.4,  # most regular drugs once daily, some twice or more
    "prescribing_weekdays_per_year": 250,
    "pharmacy_days_per_year": 312,  # six days a week
    "peak_hour_share_of_prescribing_day": 0.15,
    "peak_hour_share_of_dispensing_day": 0.12,
    "peak_hour_share_of_administrations_day": 0.35,  # the 08:00 round carries the morning doses
    "reads_per_prescription": 1,  # the GP opens the list before prescribing
    "dry_run_checks_per_prescription": 1,  # CDS order-select / POST .../list/check
    "pharmacy_reads_per_dispense": 1,
    "patient_reads_per_dispense": 1,  # the patient looks at their list (helsenorge-like)
    "ward_reads_per_administration": 0.25,  # a list or chart read for every fourth charting
    "burst_factor": 3.0,  # seconds within the peak hour are burstier than its mean
    "headroom": 2.0,  # run at no more than half of what the cores can do
    "cpu_ms_per_core_second": 1000.0,
}


def model(costs: dict, home_care: bool = False) -> dict:
    per = costs["per_request"]
    a = ASSUMED
    residents = NURSING_HOME_RESIDENTS + (MULTIDOSE_USERS if home_care else 0)
    administrations_per_day = residents * DRUGS_PER_RESIDENT * a["doses_per_drug_per_day"]
    prescriptions_per_day = E_PRESCRIPTIONS_PER_YEAR / a["prescribing_weekdays_per_year"]
    dispenses_per_day = PRESCRIPTIONS_DISPENSED_PER_YEAR / a["pharmacy_days_per_year"]

    def day_and_peak(per_day: float, share: float) -> tuple[float, float]:
        return per_day, per_day * share / 3600

    volumes = {
        "prescribe with checks": day_and_peak(
            prescriptions_per_day, a["peak_hour_share_of_prescribing_day"]
        ),
        "dispense": day_and_peak(dispenses_per_day, a["peak_hour_share_of_dispensing_day"]),
        "chart a PRN dose": day_and_peak(
            administrations_per_day, a["peak_hour_share_of_administrations_day"]
        ),
    }
    rx_day, rx_peak = volumes["prescribe with checks"]
    dx_day, dx_peak = volumes["dispense"]
    ad_day, ad_peak = volumes["chart a PRN dose"]
    volumes |= {
        "list read": (
            rx_day * a["reads_per_prescription"] + ad_day * a["ward_reads_per_administration"],
            rx_peak * a["reads_per_prescription"] + ad_peak * a["ward_reads_per_administration"],
        ),
        "dry-run check": (
            rx_day * a["dry_run_checks_per_prescription"],
            rx_peak * a["dry_run_checks_per_prescription"],
        ),
        "pharmacy read": (
            dx_day * a["pharmacy_reads_per_dispense"],
            dx_peak * a["pharmacy_reads_per_dispense"],
        ),
        "patient own list": (
            dx_day * a["patient_reads_per_dispense"],
            dx_peak * a["patient_reads_per_dispense"],
        ),
    }
    peak_rps = sum(peak for _, peak in volumes.values())
    app_ms = sum(peak * per[k]["server_cpu_ms"] for k, (_, peak) in volumes.items())
    pg_ms = sum(peak * per[k]["postgres_cpu_ms"] for k, (_, peak) in volumes.items())
    wal_day = sum(day * per[k]["wal_bytes"] for k, (day, _) in volumes.items())
    stored_day = sum(day * per[k]["stored_bytes"] for k, (day, _) in volumes.items())
    factor = a["burst_factor"] * a["headroom"] / a["cpu_ms_per_core_second"]

    # Per patient-year: a patient with prescriptions (the national averages), and a
    # nursing-home resident (their chartings and the reads that go with them).
    patients = POPULATION * SHARE_WITH_A_PRESCRIPTION
    rx_per_patient = E_PRESCRIPTIONS_PER_YEAR / patients
    dx_per_patient = PRESCRIPTIONS_DISPENSED_PER_YEAR / patients

    def patient_year(metric: str) -> float:
        return rx_per_patient * (
            per["prescribe with checks"][metric]
            + per["list read"][metric]
            + per["dry-run check"][metric]
        ) + dx_per_patient * (
            per["dispense"][metric] + per["pharmacy read"][metric] + per["patient own list"][metric]
        )

    chartings = DRUGS_PER_RESIDENT * a["doses_per_drug_per_day"] * 365

    def resident_year(metric: str) -> float:
        return chartings * (
            per["chart a PRN dose"][metric]
            + a["ward_reads_per_administration"] * per["list read"][metric]
        )

    return {
        "scenario": "nursing homes and home care (every multidose user charted)"
        if home_care
        else "nursing homes",
        "per_day": {k: round(day) for k, (day, _) in volumes.items()},
        "peak_hour_requests_per_s": {k: round(peak, 1) for k, (_, peak) in volumes.items()},
        "peak_requests_per_s": round(peak_rps, 1),
        "peak_cpu_cores_used": {
            "application": round(app_ms / 1000, 2),
            "postgres": round(pg_ms / 1000, 2),
        },
        "cores_to_provision": {
            "application": math.ceil(app_ms * factor),
            "postgres": math.ceil(pg_ms * factor),
        },
        "wal": {
            "per_day_gb": round(wal_day / 1e9, 2),
            "per_year_tb": round(wal_day * 365 / 1e12, 2),
        },
        "stored": {
            "per_day_gb": round(stored_day / 1e9, 2),
            "per_year_tb": round(stored_day * 365 / 1e12, 2),
        },
        "patient_year": {
            "patients_with_a_prescription": round(patients),
            "prescriptions": round(rx_per_patient, 1),
            "dispenses": round(dx_per_patient, 1),
            "stored_kb": round(patient_year("stored_bytes") / 1e3, 1),
            "wal_kb": round(patient_year("wal_bytes") / 1e3, 1),
        },
        "resident_year": {
            "chartings": round(chartings),
            "stored_mb": round(resident_year("stored_bytes") / 1e6, 2),
            "wal_mb": round(resident_year("wal_bytes") / 1e6, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("costs", type=Path, help="the JSON bench/costs.py printed")
    args = parser.parse_args()
    costs = json.loads(args.costs.read_text())
    print(
        json.dumps(
            {
                "costs_measured": costs["conditions"],
                "assumed": ASSUMED,
                "models": [model(costs), model(costs, home_care=True)],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
