"""The floor of medloop's own stack (issue #20): a bare ASGI app on the same uvicorn (httptools,
uvloop), psycopg 3 and orjson, serving the two hot requests of ``bench/api.py`` — a
prescriber's list read (``GET /patients/{id}/list``) and prescribe (``POST
/patients/{id}/prescriptions``) — with exactly medloop's database round trips and statements,
the same token caching and byte-identical response bodies, and nothing else: no framework, no
domain, no decision support. What medloop costs beyond it is what its Python costs.

It cannot drift from medloop because it knows nothing of its own: ``calibrate`` runs medloop
itself (in-process, on the benchmark's database, for one calibration patient) through the
scenario the floor serves — list read, prescribe ``ROTATION[v]`` at list version ``v`` — and
records, per request, every statement medloop sent to PostgreSQL (its SQL text, parameters and
whether it was prepared, grouped by round trip: one group per pipeline or single statement)
and the response (status, headers, body). The floor replays them for another patient with the
values that differ put in: the patient's id and national id, the ids the request carries
(entry, prescription, Idempotency-Key), fresh ids where medloop made fresh ones (request id,
command id), and the request's moment wherever medloop wrote its moment. Its list body is the
recorded one with those values put in, parsed once per list version and rendered with one
``orjson.dumps`` per read, as the issue's floor did. What the floor leaves out by design is
the computing: decision support, the domain's checks, the attestation digests and the
idempotency fingerprint (the recorded digests are sent again, the fingerprint is a SHA-256 of
the body); what it does not serve answers 404/422/412 with a short text.

A patient's list state lives in the worker that served its requests: each benchmark client has
its own keep-alive connection, which uvicorn keeps in one worker, and its own patients. A
patient whose revision in the database is not the one this worker knows answers 503 (the
benchmark counts statuses, so that would show).

``tests/api/test_floor_protocol.py`` keeps the floor honest: on PostgreSQL its round trips
equal medloop's by libpq's protocol trace, and its bodies equal medloop's byte for byte for
the same requests.

Run: ``python bench/floor.py --calibration FILE --database-url URL --port P --workers 2``
(``bench/api.py --floor`` calibrates, starts it and runs it interleaved with medloop).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import os
import pickle
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jwt
import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

ROTATION = (
    "090436",
    "090283",
    "090334",
    "090861",
    "090606",
    "090555",
    "090997",
    "090402",
    "090028",
    "090368",
)
"""The drugs prescribed in turn (bench/api.py's rotation): ``ROTATION[v]`` at list version v."""

APPLICATION_NAME = "medloop-floor"
"""The floor's connections as pg_stat_activity shows them (bench/api.py reads their CPU)."""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32 = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_LIST = re.compile(r"^/patients/([0-9a-f-]{36})/list$")
_PRESCRIBE = re.compile(r"^/patients/([0-9a-f-]{36})/prescriptions$")


# -- what calibration records ------------------------------------------------------------------


@dataclass(frozen=True)
class JsonText:
    """A JSON parameter as medloop sent it (its text); replayed as the same text."""

    text: str


@dataclass
class Statement:
    many: bool
    sql: str
    params: Any  # dict (or list of dicts for ``many``) of str, int, datetime, JsonText, None …
    prepare: bool | None


@dataclass
class Step:
    """One recorded request: its round trips (each a list of statements: one group per
    pipeline or single statement), its answer, and the values it introduced."""

    method: str
    path: str
    trips: list[list[Statement]]
    status: int
    headers: list[tuple[str, str]]
    body: str
    # token -> what it stands for: "request_id", "entry_id", "prescription_id",
    # "idempotency_key", "uuid", "hex", "instant" (a moment the request wrote, in any form)
    fresh: dict[str, str] = field(default_factory=dict)
    instants: dict[datetime, str] = field(default_factory=dict)  # calibration moment -> token


@dataclass
class Calibration:
    patient_id: str
    national_id: str
    reads: list[Step]  # reads[v]: the list read at list version v
    prescribes: list[Step]  # prescribes[v]: prescribe ROTATION[v] at list version v
    public_key: str
    issuer: str
    audience: str


# -- the server (imports nothing of medloop) ----------------------------------------------------


def _instant_forms(moment: datetime) -> list[str]:
    iso = moment.isoformat()
    return [iso, iso.replace("+00:00", "Z")]


class _Patient:
    """What one worker knows of one patient: list version, revision, and the values put in."""

    def __init__(self, calibration: Calibration, patient_id: str) -> None:
        self.version = 0
        self.revision: int | None = None
        self.national_id: str | None = None
        self.values: dict[str, str] = {calibration.patient_id: patient_id}
        self.body: tuple[int, Any] | None = None  # (list version, parsed body)


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}
"""One regular expression per set of calibration tokens (a step's: the same for every request)."""
_PARTS: dict[tuple[int, str], tuple[str, ...]] = {}
"""Each recorded text split once at its tokens: literal text at even places, tokens at odd."""


class Substitution:
    """Puts the values of one request into recorded text: the calibration's tokens (longest
    first) are found once per recorded text, and each request joins that text's pieces with its
    own values. (Compiling the expression and scanning the text on every request took about
    half of the floor's samples, a cost of the replay that a bare server does not have.)"""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        tokens = tuple(sorted(values, key=len, reverse=True))
        pattern = None
        if tokens:
            pattern = _PATTERNS.get(tokens)
            if pattern is None:
                alternatives = "|".join(re.escape(t) for t in tokens)
                pattern = _PATTERNS[tokens] = re.compile(f"({alternatives})")
        self.pattern = pattern
        self.moments: dict[datetime, datetime] = {}

    def text(self, text: str) -> str:
        if self.pattern is None:
            return text
        key = (id(self.pattern), text)
        parts = _PARTS.get(key)
        if parts is None:
            parts = _PARTS[key] = tuple(self.pattern.split(text))
        if len(parts) == 1:
            return text
        values = self.values
        return "".join(values[part] if odd % 2 else part for odd, part in enumerate(parts))

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, JsonText):
            return Json(self.text(value.text), dumps=_identity)
        if isinstance(value, datetime):
            return self.moments.get(value, value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def _identity(text: str) -> str:
    return text


class Floor:
    """The ASGI app."""

    def __init__(
        self,
        calibration: Calibration,
        database_url: str,
        *,
        pool_size: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.calibration = calibration
        self.database_url = database_url
        self.pool_size = pool_size
        self.clock = clock
        self.tokens: dict[str, dict[str, Any]] = {}
        self.patients: dict[str, _Patient] = {}
        self.pool: asyncio.Queue[psycopg.AsyncConnection] | None = None
        self.connections: list[psycopg.AsyncConnection] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status, answer_headers, answer = await self._answer(
            scope["method"], scope["path"], headers, body
        )
        raw = [(k.encode(), v.encode()) for k, v in answer_headers]
        raw.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": answer})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def open(self) -> None:
        self.pool = asyncio.Queue()
        for _ in range(self.pool_size):
            conn = await psycopg.AsyncConnection.connect(
                self.database_url,
                application_name=APPLICATION_NAME,
                cursor_factory=_medloop_cursor(),
            )
            self.connections.append(conn)
            self.pool.put_nowait(conn)

    async def close(self) -> None:
        for conn in self.connections:
            await conn.close()
        self.connections.clear()

    def _verify(self, headers: dict[str, str]) -> dict[str, Any] | None:
        """The token's claims, verified once and then remembered (as medloop does)."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        claims = self.tokens.get(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self.calibration.public_key,
                    algorithms=["RS256", "ES256", "EdDSA"],
                    audience=self.calibration.audience,
                    issuer=self.calibration.issuer,
                )
            except jwt.PyJWTError:
                return None
            self.tokens[token] = claims
        return claims

    async def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if self._verify(headers) is None:
            return _text(401, "a valid bearer token is required")
        listed = _LIST.match(path) if method == "GET" else None
        if listed:
            return await self._read_list(listed.group(1))
        prescribing = _PRESCRIBE.match(path) if method == "POST" else None
        if prescribing:
            return await self._prescribe(prescribing.group(1), headers, body)
        return _text(404, "the floor serves the list read and prescribe only")

    def _patient(self, patient_id: str) -> _Patient:
        found = self.patients.get(patient_id)
        if found is None:
            found = self.patients[patient_id] = _Patient(self.calibration, patient_id)
        return found

    async def _read_list(self, patient_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        patient = self._patient(patient_id)
        step = self.calibration.reads[patient.version]
        values = self._values(patient, step, {})
        row = await self._replay(step, values, patient)
        if row is None:
            return _text(503, "the floor does not know this patient's current list")
        if patient.body is None or patient.body[0] != patient.version:
            rendered = Substitution(patient.values).text(step.body)
            patient.body = (patient.version, orjson.loads(rendered))
        answer = orjson.dumps(patient.body[1], option=orjson.OPT_NON_STR_KEYS)
        return step.status, self._headers(step, values), answer

    async def _prescribe(
        self, patient_id: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        patient = self._patient(patient_id)
        if patient.version >= len(self.calibration.prescribes):
            return _text(422, "the floor is not calibrated for this many prescriptions")
        step = self.calibration.prescribes[patient.version]
        request = orjson.loads(body)
        if request.get("drug", {}).get("varenr") != ROTATION[patient.version]:
            return _text(422, f"the floor prescribes {ROTATION[patient.version]} next")
        if headers.get("if-match", "").strip('W/"') != str(patient.version):
            return _text(412, "the list has changed")
        given = {
            "entry_id": str(request["entry_id"]),
            "prescription_id": str(request["terms"]["prescription_id"]),
            "idempotency_key": headers.get("idempotency-key", ""),
        }
        values = self._values(patient, step, given)
        row = await self._replay(step, values, patient, fingerprint=hashlib.sha256(body))
        if row is None:
            return _text(503, "the floor does not know this patient's current list")
        patient.values.update(values.values)  # the entry's ids and moment stay on the list
        patient.version += 1
        answer = values.text(step.body).encode()
        return step.status, self._headers(step, values), answer

    def _values(self, patient: _Patient, step: Step, given: dict[str, str]) -> Substitution:
        """The request's values: the patient's, plus fresh ones for what this step made."""
        values = dict(patient.values)
        moment = self.clock()
        for token, kind in step.fresh.items():
            if kind == "instant":
                continue
            if kind in given:
                values[token] = given[kind]
            elif kind == "hex":
                values[token] = uuid.uuid4().hex
            else:  # request_id, uuid
                values[token] = str(uuid.uuid4())
        for calibrated in step.instants:
            for old, new in zip(_instant_forms(calibrated), _instant_forms(moment), strict=True):
                values[old] = new
        # Learnt from the patient's first statement when not known yet (``_current``).
        values[self.calibration.national_id] = patient.national_id or ""
        found = Substitution(values)
        found.moments = dict.fromkeys(step.instants, moment)
        return found

    async def _replay(
        self, step: Step, values: Substitution, patient: _Patient, fingerprint=None
    ) -> dict[str, Any] | None:
        """The step's round trips in one transaction, as medloop sends them: BEGIN (written
        with the first statement, by medloop's own cursor), the recorded trips, and COMMIT on
        its own unless a trip carried it (an audited read's audit record and COMMIT go
        together); ``None`` when the patient's revision is not the one this worker knows."""
        assert self.pool is not None
        conn = await self.pool.get()
        try:
            last: dict[str, Any] | None = None
            try:
                async with conn.cursor(row_factory=dict_row) as cursor:
                    for trip in step.trips:
                        if len(trip) == 1 and not trip[0].many:
                            last = await self._execute(cursor, trip[0], values, fingerprint)
                            if last is not None and not self._current(patient, last, values):
                                raise _Stale
                            continue
                        # Several statements: one round trip written at once, as medloop
                        # sends it (its own function, with the COMMIT behind the row's).
                        commit = trip[-1].sql == "COMMIT"
                        statements = [
                            (s.sql, self._rows(s, values, fingerprint))
                            for s in (trip[:-1] if commit else trip)
                        ]
                        await _medloop_postgres().execute_at_once_async(
                            cursor, statements, commit=commit
                        )
                        last = await cursor.fetchone() if cursor.description else None
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
            return last or {}
        except _Stale:
            return None
        finally:
            self.pool.put_nowait(conn)

    async def _execute(self, cursor, statement, values, fingerprint):
        params = self._rows(statement, values, fingerprint)
        if statement.many:
            await cursor.executemany(statement.sql, params)
            return None
        await cursor.execute(statement.sql, params[0], prepare=statement.prepare)
        if cursor.description is None:
            return None
        return await cursor.fetchone()

    def _rows(self, statement, values, fingerprint) -> list[Any]:
        """The statement's rows of parameters with the request's values put in."""
        rows = values.value(statement.params if statement.many else [statement.params])
        if fingerprint is not None:
            for params in rows:
                if isinstance(params, dict) and "fingerprint" in params:
                    params["fingerprint"] = fingerprint.hexdigest()
        return rows

    def _current(self, patient: _Patient, row: dict[str, Any], values: Substitution) -> bool:
        """Whether the patient's revision (read with its first statement) is the one this
        worker last saw (or the next, bumped by a command); learns the national id."""
        if "national_id" in row and patient.national_id is None:
            patient.national_id = str(row["national_id"])
            values.values[self.calibration.national_id] = patient.national_id
        revision = row.get("revision")
        if revision is None:
            return True
        known = patient.revision
        if known is not None and revision not in (known, known + 1):
            return False
        patient.revision = revision
        return True

    def _headers(self, step: Step, values: Substitution) -> list[tuple[str, str]]:
        return [(k, values.text(v)) for k, v in step.headers]


class _Stale(Exception):
    pass


def _medloop_cursor() -> type[psycopg.AsyncCursor]:
    """The cursor medloop's engine uses (a transaction's ``BEGIN`` written with its first
    statement)."""
    return _medloop_postgres().AsyncCursor


def _medloop_postgres():
    """``medloop/store/postgres.py`` (the cursor medloop's engine uses, and the round trip
    written at once that its queued statements go in), loaded from its file: the floor talks to
    PostgreSQL exactly as medloop does, and imports nothing else of medloop."""
    found = sys.modules.get(_CURSOR_MODULE)
    if found is None:
        path = BENCH.parent / "medloop" / "store" / "postgres.py"
        spec = importlib.util.spec_from_file_location(_CURSOR_MODULE, path)
        assert spec is not None and spec.loader is not None
        found = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(found)
        sys.modules[_CURSOR_MODULE] = found
    return found


_CURSOR_MODULE = "floor_medloop_postgres"


def _text(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "text/plain; charset=utf-8")], text.encode()


def load(path: Path) -> Calibration:
    return pickle.loads(path.read_bytes())


def app_factory() -> Floor:
    """For uvicorn's workers: the calibration file and database from the environment."""
    return Floor(load(Path(os.environ["FLOOR_CALIBRATION"])), os.environ["FLOOR_DATABASE_URL"])


# -- calibration (runs medloop in-process; bench side only) -------------------------------------


@contextmanager
def recorded_statements() -> Iterator[list[list[Statement]]]:
    """Every statement psycopg sends while the block runs, grouped by round trip (the
    statements of one pipeline together, any other statement alone)."""
    from medloop.store import postgres as medloop_postgres  # noqa: PLC0415 (bench side)

    trips: list[list[Statement]] = []
    state = {"pipeline": 0}
    at_once = medloop_postgres.execute_at_once
    cursor_execute = psycopg.Cursor.execute
    cursor_executemany = psycopg.Cursor.executemany
    connection_pipeline = psycopg.Connection.pipeline

    def add(statement: Statement) -> None:
        if state["pipeline"] and trips and state.get("open"):
            trips[-1].append(statement)
        else:
            trips.append([statement])
            state["open"] = bool(state["pipeline"])

    def execute(self, query, params=None, *, prepare=None, binary=None):
        add(Statement(False, str(query), _recordable(params), prepare))
        return cursor_execute(self, query, params, prepare=prepare, binary=binary)

    def executemany(self, query, params_seq, *, returning=False):
        rows = list(params_seq)
        add(Statement(True, str(query), [_recordable(p) for p in rows], None))
        return cursor_executemany(self, query, rows, returning=returning)

    @contextmanager
    def pipeline(self):
        state["pipeline"] += 1
        state["open"] = False
        try:
            with connection_pipeline(self) as found:
                yield found
        finally:
            state["pipeline"] -= 1
            state["open"] = False

    def execute_at_once(cursor, statements, *, commit=False):
        statements = [(sql, list(rows)) for sql, rows in statements]
        trip = [
            Statement(many, str(sql), _recordable(rows if many else rows[0]), True)
            for sql, rows in statements
            for many in [len(rows) > 1]
        ]
        if commit:
            trip.append(Statement(False, "COMMIT", None, None))
        trips.append(trip)
        state["open"] = False
        return at_once(cursor, statements, commit=commit)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
    psycopg.Connection.pipeline = pipeline  # type: ignore[method-assign]
    medloop_postgres.execute_at_once = execute_at_once
    try:
        yield trips
    finally:
        psycopg.Cursor.execute = cursor_execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = cursor_executemany  # type: ignore[method-assign]
        psycopg.Connection.pipeline = connection_pipeline  # type: ignore[method-assign]
        medloop_postgres.execute_at_once = at_once


def _recordable(params: Any) -> Any:
    if isinstance(params, Json):
        dumped = params.dumps(params.obj)
        return JsonText(dumped.decode() if isinstance(dumped, bytes) else dumped)
    if isinstance(params, dict):
        return {k: _recordable(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [_recordable(v) for v in params]
    if isinstance(params, uuid.UUID):
        return str(params)
    return params


def calibrate(
    client, patient_id: str, national_id: str, gp_token: str, key_info, start: date
) -> Calibration:
    """Record medloop answering the floor's scenario for ``patient_id`` (a registered patient
    with an empty list) through ``client`` (a Starlette ``TestClient`` over medloop's app on
    PostgreSQL, whose catalogue knowledge is built: it has served a command); ``start`` is the
    prescriptions' start date. A first, unrecorded read puts the patient's state in medloop's
    cache, as it is in steady state."""
    reads: list[Step] = []
    prescribes: list[Step] = []
    auth = {"Authorization": f"Bearer {gp_token}"}
    known: set[str] = {patient_id}
    assert client.get(f"/patients/{patient_id}/list", headers=auth).status_code == 200
    for v in range(len(ROTATION) + 1):
        with recorded_statements() as trips:
            response = client.get(f"/patients/{patient_id}/list", headers=auth)
        assert response.status_code == 200, response.text
        reads.append(_step("GET", f"/patients/{patient_id}/list", trips, response, {}, known))
        if v == len(ROTATION):
            break
        body = {
            "entry_id": str(uuid.uuid4()),
            "drug": {"varenr": ROTATION[v]},
            "use": "regular",
            "start": start.isoformat(),
            "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
        }
        key = str(uuid.uuid4())
        with recorded_statements() as trips:
            response = client.post(
                f"/patients/{patient_id}/prescriptions",
                content=orjson.dumps(body),
                headers={
                    **auth,
                    "Content-Type": "application/json",
                    "If-Match": f'"{v}"',
                    "Idempotency-Key": key,
                },
            )
        assert response.status_code == 201, response.text
        given = {
            body["entry_id"]: "entry_id",
            body["terms"]["prescription_id"]: "prescription_id",
            key: "idempotency_key",
        }
        path = f"/patients/{patient_id}/prescriptions"
        prescribes.append(_step("POST", path, trips, response, given, known))
    public_key, issuer, audience = key_info
    return Calibration(patient_id, national_id, reads, prescribes, public_key, issuer, audience)


def _step(method, path, trips, response, given: dict[str, str], known: set[str]) -> Step:
    request_id = response.headers["x-request-id"]
    headers = [
        (k, v)
        for k, v in response.headers.items()
        if k.lower()
        in (
            "etag",
            "location",
            "content-type",
            "x-request-id",
            "cache-control",
            "x-content-type-options",
        )
    ]
    step = Step(method, path, trips, response.status_code, headers, response.text)
    step.fresh[request_id] = "request_id"
    step.fresh.update(given)
    texts = [response.text, *(v for _, v in headers)]
    for trip in trips:
        for statement in trip:
            _collect(statement.params, texts, step.instants)
    for moment in step.instants:
        step.instants[moment] = "instant"
    for text in texts:
        for found in _UUID.findall(text):
            if found not in known and found not in step.fresh:
                step.fresh[found] = "uuid"
        for found in _HEX32.findall(text):
            if found not in known and found not in step.fresh:
                step.fresh[found] = "hex"
    known.update(step.fresh)
    return step


def _collect(value: Any, texts: list[str], moments: dict[datetime, str]) -> None:
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, JsonText):
        texts.append(value.text)
    elif isinstance(value, datetime) and value.tzinfo is not None:
        moments[value] = "instant"
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, texts, moments)
    elif isinstance(value, list):
        for v in value:
            _collect(v, texts, moments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--database-url", required=True, help="postgresql://… (psycopg form)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--acceptor",
        choices=("balanced", "uvloop"),
        default="balanced",
        help="how the workers share the listening socket: taking turns, as `medloop serve "
        "--workers N` does (medloop.api.server.BalancedConfig), or uvloop's own server",
    )
    args = parser.parse_args()
    import uvicorn

    os.environ["FLOOR_CALIBRATION"] = str(args.calibration.resolve())
    os.environ["FLOOR_DATABASE_URL"] = args.database_url
    sys.path.append(str(Path(__file__).resolve().parent))
    options = {
        "factory": True,
        "host": "127.0.0.1",
        "port": args.port,
        "workers": args.workers,
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
    }
    if args.workers > 1 and args.acceptor == "balanced":
        # The same server set-up as medloop's workers (not part of the app): with uvloop's own
        # server on the shared socket one worker may accept every keep-alive client (bench/
        # RESULTS.md, issue #20, session 6), and the two servers must split their clients alike
        # for the ratios to compare like with like.
        from uvicorn.supervisors import Multiprocess

        from medloop.api.server import BalancedConfig

        config = BalancedConfig("floor:app_factory", **options)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.run("floor:app_factory", loop="uvloop", **options)


if __name__ == "__main__":
    main()
