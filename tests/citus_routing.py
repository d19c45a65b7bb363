"""The check behind ``tests/ops/test_citus_routing.py``: which table is which (docs/scaling.md),
the classifier of a statement (routed by patient or not), the allow-list of known fan-outs, and
the findings over what ``tests/sql_capture.py`` captured. A module of its own so that, under
pytest-xdist, the controller can judge every worker's share at the end of the session
(:func:`verdict`, called from ``tests/conftest.py``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from medloop.store import tables
from tests import sql_capture

# -- which table is which (docs/scaling.md) ---------------------------------------------------

#: Reference tables: the same on every node (the FEST catalogue, wards).
REFERENCE = frozenset(
    {name for name in tables.metadata.tables if name.startswith("fest_")} | {"ward", "ward_config"}
)

#: Tables that stay on the coordinator (not per patient): the FHIR export jobs, the page
#: sessions, and the message inbox (keyed by the message id, which must be unique across the
#: country, and holding messages for persons no list is kept for).
COORDINATOR = frozenset({"fhir_export", "page_session", "received_message", "alembic_version"})

#: Distributed by patient, co-located: table -> distribution column.
DISTRIBUTED = {
    name: ("id" if name == "patient" else "patient_id")
    for name in tables.metadata.tables
    if name not in REFERENCE | COORDINATOR
}


# -- the classifier -----------------------------------------------------------------------------

_VALUES = (exp.Placeholder, exp.Parameter, exp.Literal, exp.Null)


def _is_value(node: exp.Expression) -> bool:
    while isinstance(node, (exp.Cast, exp.Paren, exp.TryCast)):
        node = node.this
    return isinstance(node, _VALUES)


def _conjuncts(condition: exp.Expression | None) -> Iterator[exp.Expression]:
    if condition is None:
        return
    if isinstance(condition, exp.Where):
        condition = condition.this
    while isinstance(condition, exp.Paren):
        condition = condition.this
    if isinstance(condition, exp.And):
        yield from _conjuncts(condition.this)
        yield from _conjuncts(condition.expression)
    else:
        yield condition


def _blocks(tree: exp.Expression) -> Iterator[exp.Expression]:
    """Every query block (SELECT, UPDATE, DELETE) of the statement, outer ones first."""
    for node in tree.walk():
        if isinstance(node, (exp.Select, exp.Update, exp.Delete)):
            yield node


def _own_sources(block: exp.Expression) -> dict[str, str]:
    """alias -> table name of the tables the block reads or changes itself (not those of its
    subqueries)."""
    found: list[exp.Table] = []
    if isinstance(block, (exp.Update, exp.Delete)) and isinstance(block.this, exp.Table):
        found.append(block.this)
    from_ = block.args.get("from_") or block.args.get("from")
    if from_ is not None and isinstance(from_.this, exp.Table):
        found.append(from_.this)
    for join in block.args.get("joins") or ():
        if isinstance(join.this, exp.Table):
            found.append(join.this)
    for using in block.args.get("using") or ():
        if isinstance(using, exp.Table):
            found.append(using)
    return {(t.alias_or_name or t.name).lower(): t.name.lower() for t in found}


def _conditions(block: exp.Expression) -> list[exp.Expression]:
    found = list(_conjuncts(block.args.get("where")))
    for join in block.args.get("joins") or ():
        found.extend(_conjuncts(join.args.get("on")))
    return found


@dataclass(frozen=True)
class Verdict:
    unrouted: tuple[str, ...]  # distributed tables the statement reaches without routing
    touched: tuple[str, ...]  # distributed tables it touches at all

    @property
    def routed(self) -> bool:
        return not self.unrouted


def classify(sql: str, dialect: str = "postgres") -> Verdict:
    """Which distributed tables ``sql`` touches, and which of them it reaches without routing
    by patient. Raises ``sqlglot`` errors on a statement it cannot parse."""
    dialect = {"postgresql": "postgres"}.get(dialect, dialect)
    unrouted: list[str] = []
    touched: list[str] = []
    for tree in sqlglot.parse(sql, read=dialect):
        if tree is None:
            continue
        touched.extend(
            t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() in DISTRIBUTED
        )
        routed_outer: dict[int, set[str]] = {}
        for block in _blocks(tree):
            unrouted.extend(_unrouted_in_block(block, routed_outer))
        insert = tree if isinstance(tree, exp.Insert) else tree.find(exp.Insert)
        if insert is not None:
            unrouted.extend(_unrouted_insert(insert))
    return Verdict(tuple(sorted(set(unrouted))), tuple(sorted(set(touched))))


def _unrouted_insert(insert: exp.Insert) -> list[str]:
    target = insert.this
    columns: list[str] | None = None
    if isinstance(target, exp.Schema):
        columns = [c.name.lower() for c in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table) or target.name.lower() not in DISTRIBUTED:
        return []
    name = target.name.lower()
    if columns is None or DISTRIBUTED[name] in columns:
        return []  # all columns, in table order (the distribution column among them), or named
    return [name]


def _unrouted_in_block(block: exp.Expression, routed_outer: dict) -> list[str]:
    sources = _own_sources(block)
    outer: dict[str, str] = {}
    outer_routed: set[str] = set()
    for ancestor in _ancestors(block):
        for alias, name in _own_sources(ancestor).items():
            outer.setdefault(alias, name)
        outer_routed |= routed_outer.get(id(ancestor), set())
    distributed = {alias: name for alias, name in sources.items() if name in DISTRIBUTED}

    def key_of(column: exp.Expression) -> tuple[str, bool] | None:
        """(alias, own) when ``column`` is a source's distribution column (own: of this
        block's sources, not an outer one's)."""
        if not isinstance(column, exp.Column):
            return None
        name, qualifier = column.name.lower(), column.table.lower()
        if qualifier:
            if qualifier in sources:
                table = sources[qualifier]
                return (qualifier, True) if DISTRIBUTED.get(table) == name else None
            if qualifier in outer:
                table = outer[qualifier]
                return (qualifier, False) if DISTRIBUTED.get(table) == name else None
            return None
        having = [a for a, t in sources.items() if DISTRIBUTED.get(t) == name]
        if len(having) == 1:
            return having[0], True
        return None

    routed: set[str] = set()
    links: list[tuple[str, str]] = []
    for condition in _conditions(block):
        if isinstance(condition, exp.EQ):
            left, right = key_of(condition.this), key_of(condition.expression)
            for mine, other in ((left, condition.expression), (right, condition.this)):
                if mine is not None and mine[1]:
                    value = other.this if isinstance(other, exp.Any) else other
                    if _is_value(value) and not isinstance(value, exp.Null):
                        routed.add(mine[0])
                    key = key_of(other)
                    if key is not None and not key[1] and key[0] in outer_routed:
                        routed.add(mine[0])  # correlated with a routed outer table
            if left is not None and right is not None and left[1] and right[1]:
                links.append((left[0], right[0]))
        elif isinstance(condition, exp.In):
            key = key_of(condition.this)
            values = condition.expressions
            if key is not None and key[1] and values and all(_is_value(v) for v in values):
                routed.add(key[0])
    changed = True
    while changed:  # a join on the distribution column to a routed table routes the other
        changed = False
        for a, b in links:
            if (a in routed) != (b in routed):
                routed |= {a, b}
                changed = True
    routed_outer[id(block)] = routed
    return [name for alias, name in distributed.items() if alias not in routed]


def _ancestors(block: exp.Expression) -> Iterator[exp.Expression]:
    node = block.parent
    while node is not None:
        if isinstance(node, (exp.Select, exp.Update, exp.Delete)):
            yield node
        node = node.parent


# -- the classifier's own tests ------------------------------------------------------------------


# -- the known fan-outs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """Statements that may cross shards: those sent from ``origin`` (a regular expression
    searched in the capture's origin, "path:function < caller < …") whose text matches
    ``statement`` (searched with the whitespace collapsed), allowed because ``why``."""

    origin: str
    why: str
    statement: str = ""

    def matches(self, origin: str, statement: str) -> bool:
        return re.search(self.origin, origin) is not None and (
            re.search(self.statement, statement, re.IGNORECASE) is not None
        )


_VERIFY = "medloop operator command `audit verify`: walks every chain and every attested row"
ALLOWED: tuple[Allowed, ...] = (
    # -- operator commands, run per shard (or on a replica)
    Allowed(r"^medloop/store/audit\.py:_rows_in_order", _VERIFY),
    Allowed(
        r"^medloop/store/attestation\.py:(_table_stream|unstamped_rows|stored_records)", _VERIFY
    ),
    Allowed(
        r"^medloop/store/records\.py:",
        "operator command `medloop records check`: reads every stored record of every table",
    ),
    Allowed(
        r"^medloop/store/outbox\.py:ready < medloop/queries\.py:outbox_ready",
        "operator command `medloop eresept outbox`: the answers not yet sent, across patients "
        "(a fan-out read like a job's selection)",
        r"outbox_sent\.msg_id IS NULL",
    ),
    # -- the lookup by national id: on Citus a small table distributed by national id (or a
    # reference table of id pairs) resolves the id first; then the work routes by id
    Allowed(
        r"^(medloop/store/batch\.py:\w+ < )?medloop/store/patients\.py:"
        r"(find_patient_id|read_own_for_access)",
        "the lookup by national id (GET /patients?national_id=, /me, a message naming the "
        "patient, registration's check for a list kept already)",
        r"WHERE patient\.national_id = ",
    ),
    Allowed(
        r"^medloop/store/audit\.py:_patient_id",
        "the patient's id for an audit record whose transaction has not read the patient "
        "(falls back to the lookup by national id; the command paths note it instead)",
        r"WHERE patient\.national_id = ",
    ),
    Allowed(
        r"^medloop/store/administration\.py:gsrn_admission < medloop/loop/administration/",
        "registering a wristband: the stay a GSRN already names, across patients (like the "
        "lookup by national id; on Citus a small table distributed by GSRN)",
        r"WHERE wristband\.gsrn = ",
    ),
    Allowed(
        r"^medloop/store/prescriptions\.py:patients_of_prescriptions < medloop/loop/messages\.py",
        "message intake: the patient of the prescriptions a received message names, resolved "
        "before the command (like the lookup by national id)",
    ),
    Allowed(
        r"^medloop/store/access\.py:card < medloop/api/cds\.py:",
        "CDS Hooks feedback names the cards, not the patient: each card's patient is resolved "
        "first (like the lookup by national id), then the feedback routes by patient",
        r"WHERE cds_card\.id = ",
    ),
    # -- the system chain and claims of no patient: on Citus their own tables on the
    # coordinator (a NULL distribution value routes nowhere)
    Allowed(
        r"^medloop/store/audit\.py:append",
        "the audit chain of events about no patient (ward work, refusals naming no patient)",
        r"patient_id IS NULL",
    ),
    Allowed(
        r"^medloop/store/(batch\.py:execute < medloop/store/)?idempotency\.py:(run_once|_claimed)",
        "an idempotency claim of no patient (ward work, a CDS client token's jti), or a key "
        "claimed before migration 0020 whose response named no patient",
        r"idempotency_key\.patient_id IS NULL",
    ),
    Allowed(
        r"^medloop/store/idempotency\.py:forget_before",
        "forgetting the one-time claims of no patient (CDS client token ids) by age",
    ),
    # -- scheduled jobs: the selection of patients fans out once per run; each patient's work
    # is then a command of its own, routed
    Allowed(
        r"^medloop/store/administration\.py:\w+ < medloop/store/administration\.py:"
        r"current_admissions < medloop/loop/administration/planning\.py:_admitted",
        "jobs roll-forward and missed doses (their one caller, ``_admitted``): the residents "
        "admitted now",
    ),
    Allowed(
        r"^medloop/store/multidose\.py:periods_with_deadline_between < medloop/loop/multidose\.py:"
        r"(flag_deadlines|pharmacy_worklist)",
        "job multidose deadlines and the multidose pharmacy's worklist: the periods due soon",
    ),
    # -- ward and worklist views: reads across a ward's residents (or a doctor's patients), a
    # fan-out read on a replica
    Allowed(
        r"medloop/loop/administration/queries\.py:(ward_chart|chart_lines|charts)",
        "ward view: the ward's residents, their planned doses and chartings",
    ),
    Allowed(
        r"^medloop/store/audit\.py:_chain_many_(pg|sqlite) < medloop/store/audit\.py:append_many",
        "the audit records of a read of several patients (a ward's chart, the pharmacy's "
        "worklist, a bulk export's chunk): one record on each patient's chain in one statement, "
        "each chain's tail read by chain and patient id (on Citus it must be split per shard)",
    ),
    Allowed(
        r"^medloop/store/multidose\.py:open_tasks < medloop/loop/multidose\.py:open_tasks",
        "a multidose doctor's open tasks across their patients (a worklist)",
        r"assigned_to = ",
    ),
    Allowed(
        r"^medloop/store/administration\.py:projection_mismatches < medloop/store/audit\.py:",
        _VERIFY + " (the report columns against the attested records, migration 0017)",
    ),
    Allowed(
        r"^medloop/loop/expire\.py:patients_with_expired_prescriptions < medloop/jobs\.py:",
        "job prescription expiry: the patients with prescriptions past their validity",
    ),
    # -- FHIR reads by a resource's own id: the resource's patient is resolved first (like the
    # lookup by national id; on Citus a small table keyed by the resource id), then the read
    # routes by that patient
    Allowed(
        r"^medloop/store/(prescriptions\.py:(patients_of_prescriptions < medloop/store/"
        r"prescriptions\.py:patient_of_prescription|patient_of_dispense)|list_changes\.py:"
        r"patient_of_entry)",
        "a FHIR read by resource id: the patient of the prescription, dispense or entry",
    ),
    Allowed(
        r"^medloop/store/directory\.py:namings",
        "FHIR Practitioner and Organization: the records naming an HPR number or organisation "
        "across patients (a directory lookup, like the one by national id)",
    ),
    # -- reports and exports: aggregates across a ward's residents, a prescriber's patients or
    # a pharmacy's periods, and the bulk export's patient selection: fan-out reads that go to
    # a replica (docs/scaling.md)
    Allowed(
        r"medloop/reports/(ward|prescriber|pharmacy)\.py:",
        "quality reports (ward, prescriber, pharmacy): aggregates, a fan-out read on a replica",
    ),
    Allowed(
        r"^medloop/store/administration\.py:_admissions < medloop/store/administration\.py:"
        r"admissions_to",
        "a ward's admissions (ward views and the ward report): a fan-out read on a replica",
    ),
    Allowed(
        r"^medloop/store/exports\.py:patient_ids < medloop/loop/exports\.py:",
        "FHIR bulk export (exporter role, a background job): the patients a ward or the system "
        "export covers, each then read on its own",
    ),
    # -- a store read called without the patient's id by a test (the API, the pages and FHIR
    # pass it)
    Allowed(
        r"^medloop/store/administration\.py:(count_missed|planned_doses|_chartings < "
        r"medloop/store/administration\.py:chartings_of_doses)$",
        "a store read a test calls directly to inspect what the jobs and the ward chart wrote",
    ),
    Allowed(
        r"^medloop/store/audit\.py:events_for_patient$",
        "a patient's access log read by a test without the patient's id",
    ),
)


def allowed(origin: str, statement: str) -> Allowed | None:
    collapsed = re.sub(r"\s+", " ", statement)
    return next((a for a in ALLOWED if a.matches(origin, collapsed)), None)


#: Sent by no code of the application's: the tests' own inspection of the database (counting
#: rows, proving the append-only triggers refuse an UPDATE), and the schema migrations (run once
#: by the operator, as distributed DDL on Citus).
def _not_the_applications(origin: str) -> bool:
    return origin == "" or origin.startswith(("medloop/store/migrations/", "medloop/store/migrate"))


# -- the check over the whole session ---------------------------------------------------------


def _findings(seen: Iterable[sql_capture.Seen]) -> tuple[int, list[str], set[Allowed]]:
    checked, problems, used = 0, [], set()
    for found in seen:
        origins = sorted(o for o in found.origins if not _not_the_applications(o))
        if not origins:
            continue
        try:
            verdict = classify(found.statement, found.dialect)
        except sqlglot.errors.SqlglotError as error:
            names = {n for n in DISTRIBUTED if re.search(rf"\b{n}\b", found.statement)}
            if names:
                problems.append(f"cannot parse ({error.__class__.__name__}): {_told(found)}")
            continue
        if not verdict.touched:
            continue
        checked += 1
        if verdict.routed:
            continue
        for origin in origins:
            entry = allowed(origin, found.statement)
            if entry is not None:
                used.add(entry)
                continue
            problems.append(
                f"{', '.join(verdict.unrouted)} not routed by patient: {_told(found, origin)}"
            )
    return checked, problems, used


def _told(found: sql_capture.Seen, origin: str = "") -> str:
    text = re.sub(r"\s+", " ", found.statement)
    return (
        f"[{found.dialect}, {found.count}x, first in {found.test}]\n    from {origin}\n    {text}"
    )


def verdict(directory: Path) -> str | None:
    """Under pytest-xdist, at the end of the session (``tests/conftest.py``): every worker's
    statements judged together; ``None`` when every one routes or is an allowed fan-out."""
    seen = sql_capture.reported(directory)
    if seen is None:
        return "no worker reported the SQL statements it captured"
    checked, problems, _used = _findings(seen)
    if problems:
        return f"{len(problems)} of {checked} statements do not route:\n" + "\n".join(
            sorted(problems)
        )
    return None
