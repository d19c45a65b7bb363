"""Wards: a ward of the caller's organisation and its configuration versions (slot clock
times, charting windows, witness policy), through the runner's variant for work beside a list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from pydantic import Field, StrictInt
from sqlalchemy import Connection, Engine

from medloop.domain._model import Frozen
from medloop.domain.personnel import Actor
from medloop.domain.ward import (
    Ward,
    WardConfig,
    WardIdAlreadyUsed,
    WardNotFound,
    WardOfAnotherOrganisation,
)
from medloop.loop.runner import Call, Done, run_work
from medloop.store import administration as store


class WardOrder(Frozen):
    """A new ward of the caller's organisation."""

    ward_id: UUID
    name: str = Field(min_length=1)
    config: WardConfig = WardConfig()


class WardCreatedResponse(Frozen):
    """What creating a ward answers (and a retry with its idempotency key reads back)."""

    ward_id: UUID
    organisation_id: str
    name: str = Field(min_length=1)
    config_version: StrictInt = Field(ge=1)


class WardConfiguredResponse(Frozen):
    """What configuring a ward answers (and a retry reads back)."""

    ward_id: UUID
    config_version: StrictInt = Field(ge=1)


def create_ward(engine: Engine, order: WardOrder, call: Call) -> dict[str, Any]:
    """Create a ward of ``call.actor``'s organisation with its first configuration."""

    def compute(conn: Connection) -> dict[str, Any]:
        if store.read_ward(conn, order.ward_id) is not None:
            raise WardIdAlreadyUsed(f"ward id {order.ward_id} is taken", ward_id=order.ward_id)
        ward = Ward(id=order.ward_id, organisation_id=call.actor.organisation.id, name=order.name)
        store.add_ward(conn, ward, order.config, call.actor, call.at)
        return {
            "ward_id": str(ward.id),
            "organisation_id": ward.organisation_id,
            "name": ward.name,
            "config_version": 1,
        }

    return _ward_command(
        engine, "create", call, order.model_dump(mode="json"), compute, WardCreatedResponse
    )


def configure_ward(engine: Engine, ward_id: UUID, config: WardConfig, call: Call) -> dict[str, Any]:
    """A new configuration version for a ward of the caller's organisation; planned doses
    follow it from the next roll-forward."""

    def compute(conn: Connection) -> dict[str, Any]:
        found = own_ward(conn, ward_id, call.actor)
        version = found.config_version + 1
        store.add_ward_config(conn, ward_id, version, config, call.actor, call.at)
        return {"ward_id": str(ward_id), "config_version": version}

    request = {"ward_id": str(ward_id), "config": config.model_dump(mode="json")}
    return _ward_command(engine, "configure", call, request, compute, WardConfiguredResponse)


def own_ward(conn: Connection, ward_id: UUID, actor: Actor) -> store.WardState:
    found = store.read_ward(conn, ward_id)
    if found is None:
        raise WardNotFound(f"there is no ward {ward_id}", ward_id=ward_id)
    if found.ward.organisation_id != actor.organisation.id:
        raise WardOfAnotherOrganisation(
            f"ward {ward_id} belongs to organisation {found.ward.organisation_id}",
            ward_id=ward_id,
            organisation_id=found.ward.organisation_id,
        )
    return found


def _ward_command(
    engine: Engine,
    action: str,
    call: Call,
    request: Mapping[str, Any],
    compute: Callable[[Connection], dict[str, Any]],
    response: type[Frozen],
) -> dict[str, Any]:
    """A ward command through the runner's variant for work beside a list (audited as
    ``ward.<action>``); a retry's stored answer loads as ``response``."""
    return dict(
        run_work(
            engine,
            f"ward.{action}",
            lambda ctx: Done(response=compute(ctx.conn)),
            call=call,
            request=request,
            replayed_as=response,
        )
    )
