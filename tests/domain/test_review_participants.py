"""Who took part in a medication review: the signing doctor is the signer, by HPR number."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medloop.domain.review import (
    Participant,
    ReviewParticipantsMissing,
    ReviewSignerNotParticipant,
    signed_participants,
)
from tests.loop.helpers import GP

NURSE = Participant(role="nurse", name="Nina Sykepleier", hpr_number="1234567")


def test_a_doctor_with_the_signers_hpr_number_is_kept_as_given() -> None:
    given = (Participant(role="doctor", name="Anja", hpr_number="431002737"), NURSE)
    assert signed_participants(given, GP) == given


def test_a_doctor_named_without_an_hpr_number_is_recorded_with_the_signers() -> None:
    given = (
        Participant(role="doctor", name="Anja"),
        Participant(role="doctor", name="Turnuslege"),
        NURSE,
    )
    recorded = signed_participants(given, GP)
    assert [p.hpr_number for p in recorded] == ["431002737", None, "1234567"]


def test_doctors_who_all_carry_other_hpr_numbers_are_refused() -> None:
    given = (Participant(role="doctor", name="Someone else", hpr_number="7654321"), NURSE)
    with pytest.raises(ReviewSignerNotParticipant, match="HPR 431002737"):
        signed_participants(given, GP)


def test_no_doctor_is_refused() -> None:
    with pytest.raises(ReviewParticipantsMissing, match="role doctor"):
        signed_participants((NURSE,), GP)


@pytest.mark.parametrize("hpr", ["", "12a4", "1234567890", "١٢٣"])
def test_an_hpr_number_is_one_to_nine_ascii_digits(hpr: str) -> None:
    with pytest.raises(ValidationError):
        Participant(role="nurse", name="Nina", hpr_number=hpr)
