"""The command layer's own refusals: what the runner and the commands refuse that no one domain
family decides (an id already taken, a drug or catalogue that is not there, a missing reason,
alerts that need an override). The refusals of a domain family live beside that family
(``medloop.domain.<family>``); the base ``DomainError`` is in ``medloop.domain.errors``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medloop.domain.errors import DomainError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from interactions import Alert


class IdAlreadyUsed(DomainError):
    """A client-chosen id (entry, prescription, dispense) is already taken."""

    code = "id-already-used"


class UnknownDrug(DomainError):
    """The drug reference is not in the catalogue version in force."""

    code = "unknown-drug"


class NoCatalogueInForce(DomainError):
    code = "no-catalogue-in-force"


class ReasonRequired(DomainError):
    code = "reason-required"


class OverrideRequired(DomainError):
    """Alerts that need an override with a reason came up; ``alerts`` lists them (their keys
    are what the retried call names as overridden)."""

    code = "override-required"

    def __init__(self, alerts: Sequence[Alert]) -> None:
        keys = [a.key for a in alerts]
        super().__init__(
            f"{len(alerts)} alert(s) need an override with a reason: {', '.join(keys)}",
            alert_keys=keys,
            alerts=[a.model_dump(mode="json") for a in alerts],
        )
        self.alerts = tuple(alerts)
