"""What a prescribe keeps between commands (issue #20) gives what it would compute afresh: a
validity's expiry (kept per duration and issue day) and a catalogue version's product validities
(kept per set of product ids)."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

from medloop.domain.validity import IsoDuration, Validity, expiry_date
from medloop.loop.catalogue import Catalogue


def test_a_validitys_kept_expiry_is_the_one_computed() -> None:
    durations = [
        IsoDuration.parse(text) for text in ("P1Y", "P10D", "P3Y", "P6M", "P2W", "P1Y1M1W1D")
    ]
    day = date(2023, 12, 25)
    for _ in range(800):
        for duration in durations:
            validity = Validity(duration=duration, basis="catalogue")
            assert validity.expires(day) == expiry_date(day, duration)
            assert validity.expires(day) == expiry_date(day, duration)  # kept
        day += timedelta(days=1)
    assert Validity(duration=durations[0], basis="x").expires(date(2024, 2, 29)) == date(
        2025, 2, 27
    )


def test_a_duration_subclass_counts_its_own_way() -> None:
    class Longer(IsoDuration):
        def after(self, start: date) -> date:
            return super().after(start) + timedelta(days=1)

    validity = Validity.model_construct(duration=Longer(years=1), basis="x")
    assert validity.expires(date(2024, 3, 1)) == date(2025, 3, 1)
    assert Validity(duration=IsoDuration(years=1), basis="x").expires(date(2024, 3, 1)) == date(
        2025, 2, 28
    )


def test_a_catalogues_kept_validities_are_the_ones_computed() -> None:
    validities = {"A": ("P1Y", "P6M"), "B": ("P6M",), "C": ()}
    catalogue = Catalogue(
        version=1,
        knowledge=None,  # type: ignore[arg-type]
        packages_by_varenr={},
        substitution_groups=(),
        product_validity=validities,
    )

    def of(*products: str) -> Any:
        return SimpleNamespace(resolved=SimpleNamespace(product_ids=products))

    for products, expected in [
        (("A",), ("P1Y", "P6M")),
        (("A", "B"), ("P1Y", "P6M")),
        (("B", "C"), ("P6M",)),
        (("C",), ()),
        (("D",), ()),
        (("A",), ("P1Y", "P6M")),
    ]:
        assert catalogue.validity_of(of(*products)) == expected
        assert catalogue.validity_of(of(*products)) == expected  # kept
