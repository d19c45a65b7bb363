"""The server side: ``medloop token``, ``medloop demo`` (built and printed, then really served on
a free port), the offline docs page, the OpenAPI document and the problem mapping."""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import time
import weakref

import httpx
from typer.testing import CliRunner

from medloop.api.app import create_app
from medloop.api.auth import Role, TokenVerifier
from medloop.api.config import ApiSettings
from medloop.api.problems import STATUS, status_for
from medloop.cli import app
from medloop.domain.errors import DomainError, error_codes

runner = CliRunner()


def test_token_prints_a_bare_token_that_the_server_accepts():
    result = runner.invoke(app, ["token", "--role", "gp", "--hpr", "431002737", "--org", "8095068"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    principal = TokenVerifier(ApiSettings.from_env("sqlite://")).verify(token)
    assert principal.role is Role.GP and principal.subject == "431002737"
    patient = runner.invoke(app, ["token", "--role", "patient", "--patient", "21014605158"])
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    assert verifier.verify(patient.stdout.strip()).is_patient


def test_token_refuses_missing_or_invalid_claims():
    invalid_role = ["token", "--role", "admin", "--hpr", "1", "--org", "1"]
    assert runner.invoke(app, invalid_role).exit_code == 1
    assert runner.invoke(app, ["token", "--role", "gp", "--hpr", "1"]).exit_code == 1
    assert runner.invoke(app, ["token", "--role", "patient", "--patient", "123"]).exit_code == 1


def test_demo_builds_the_world_and_prints_a_token_per_role(sqlite_url):
    result = runner.invoke(app, ["demo", "--db", sqlite_url, "--no-serve"])
    assert result.exit_code == 0, result.output
    for role in ("gp", "nurse", "pharmacist", "patient"):
        assert re.search(rf"^\s+{role}\s+[\w-]+\.[\w-]+\.[\w-]+$", result.stdout, re.M), role
    assert "3 residents" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_serves_the_openapi_schema_and_offline_docs_on_loopback(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from medloop.cli import app; app()", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        schema = None
        for _ in range(150):
            try:
                schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.1)
        assert schema is not None and "/patients/{patient_id}/list" in schema["paths"]
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2).text
        assert "openapi.json" in docs
        assert not re.search(r"""(src|href)=["']https?://""", docs)
        assert (tmp_path / "medloop-demo.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _every_error_class() -> set[type[DomainError]]:
    """Every ``DomainError`` subclass a medloop module defines, wherever it lives: import every
    module of the package, then walk the class tree (a class made on the fly, as a test does, is
    not reachable from its module and is left out)."""
    import importlib
    import pkgutil

    import medloop

    for info in pkgutil.walk_packages(medloop.__path__, "medloop."):
        importlib.import_module(info.name)
    found: set[type[DomainError]] = set()
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return {
        cls
        for cls in found
        if getattr(sys.modules.get(cls.__module__), cls.__qualname__, None) is cls
    }


def test_every_domain_error_code_maps_to_one_status_and_validation_is_documented(engine):
    coded = {
        cls
        for cls in _every_error_class()
        if "code" in cls.__dict__ and cls.__module__.startswith("medloop.")
    }
    assert len(coded) >= 100
    # the registry the API answers from knows every class, wherever in medloop it is defined
    registered = {
        code: cls for code, cls in error_codes().items() if cls.__module__.startswith("medloop.")
    }
    assert {cls.code: cls for cls in coded} == registered
    for code in error_codes():
        assert status_for(code) in {400, 403, 404, 409, 412, 422, 503}, code
    assert set(STATUS) <= set(error_codes())
    schema = create_app(ApiSettings.from_env("sqlite://"), engine=engine).openapi()
    assert "Problem" in schema["components"]["schemas"]
    prescribe = schema["paths"]["/patients/{patient_id}/prescriptions"]["post"]
    assert "application/problem+json" in prescribe["responses"]["422"]["content"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_serve_refuses_to_trust_the_development_keys_unless_told(sqlite_url, monkeypatch):
    for name in ("MEDLOOP_JWT_PUBLIC_KEY_FILE", "MEDLOOP_JWT_JWKS_FILE", "MEDLOOP_ALLOW_DEV_KEYS"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["serve", "--db", sqlite_url])
    assert result.exit_code == 2
    assert "MEDLOOP_ALLOW_DEV_KEYS" in result.stderr


def test_an_unexpected_error_is_a_500_problem_without_the_exception_text(engine):
    from fastapi.testclient import TestClient

    api = create_app(ApiSettings.from_env("sqlite://"), engine=engine)

    @api.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = TestClient(api, raise_server_exceptions=False).get(
        "/boom", headers={"X-Request-ID": "req-1"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == "req-1" and "secret" not in response.text
    assert response.headers.get_list("x-request-id") == ["req-1"]  # as on every other answer


def _serve_until_up(tmp_path, extra_env: dict) -> str:
    """Start ``medloop serve`` on a free port, wait for the schema, stop it; its stdout."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MEDLOOP_ALLOW_DEV_KEYS": "1", **extra_env}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from medloop.cli import app; app()",
            "serve",
            "--port",
            str(port),
            "--db",
            f"sqlite:///{tmp_path / 'serve.db'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(150):
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return process.stdout.read().decode()


def test_serve_runs_the_scheduled_jobs_unless_configuration_switches_them_off(tmp_path):
    assert "Scheduled jobs: on" in _serve_until_up(tmp_path, {"MEDLOOP_SCHEDULER": "on"})
    assert "Scheduled jobs" not in _serve_until_up(tmp_path, {"MEDLOOP_SCHEDULER": "off"})


def test_serve_refuses_several_workers_on_sqlite(sqlite_url, monkeypatch):
    monkeypatch.setenv("MEDLOOP_ALLOW_DEV_KEYS", "1")
    result = runner.invoke(app, ["serve", "--db", sqlite_url, "--workers", "2"])
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.stderr


def test_the_served_protocol_sends_the_writes_of_one_loop_turn_as_one_write():
    import asyncio

    from medloop.api.server import CoalescingTransport

    class Recording:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, name: str) -> str:
            return f"info {name}"

    async def scenario() -> Recording:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == []
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        transport.write(b"last words")
        transport.close()  # flushes before closing
        assert real.writes[-1] == b"last words" and real.closed
        assert transport.get_extra_info("peername") == "info peername"
        return real

    asyncio.run(scenario())


def test_the_served_protocol_prepares_uvicorns_access_line_only_when_its_logger_writes_it():
    import asyncio
    import logging

    import uvicorn

    from medloop.api.server import HttpProtocol

    async def echo(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class Transport:
        def __init__(self) -> None:
            self.written = b""

        def get_extra_info(self, name: str, default=None):
            return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 9000)}.get(name)

        def write(self, data: bytes) -> None:
            self.written += data

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    level, handlers, propagate = access.level, access.handlers, access.propagate
    lines = Lines()

    async def served(at: int) -> tuple[HttpProtocol, bytes, list[str]]:
        access.handlers, access.propagate = [lines], False
        access.setLevel(at)  # as uvicorn's configuration leaves it (medloop serve: warning)
        config = uvicorn.Config(echo, log_config=None, lifespan="off")
        config.load()
        access.setLevel(at)
        from uvicorn.server import ServerState

        protocol = HttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        transport = Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        lines.lines.clear()
        protocol.data_received(b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        return protocol, transport.written, list(lines.lines)

    try:
        quiet, answer, written = asyncio.run(served(logging.WARNING))
        assert quiet.access_log is False and written == []
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
        logged, answer, written = asyncio.run(served(logging.INFO))
        assert logged.access_log is True
        assert written == ['127.0.0.1:40000 - "GET /x?y=1 HTTP/1.1" 204']
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
    finally:
        access.setLevel(level)
        access.handlers, access.propagate = handlers, propagate


def test_a_new_request_id_is_a_version_4_uuid_from_the_same_random_bits():
    import random
    import uuid

    from medloop.api.app import random_request_id

    for seed in range(2000):
        random.seed(seed)
        made = random_request_id()
        random.seed(seed)
        assert made == str(uuid.UUID(int=random.getrandbits(128), version=4))
    assert uuid.UUID(random_request_id()).version == 4


class _Node:
    pass


def _cycles(count: int) -> list[_Node]:
    """``count`` pairs of objects in reference cycles (so the collector tracks them)."""
    made = []
    for _ in range(count):
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        made.append(a)
    return made


def test_a_serving_process_freezes_what_survives_the_collector(monkeypatch):
    import gc

    from medloop.api import server

    monkeypatch.setattr(server.HeapCensus, "start", lambda: None)  # no census thread here
    try:
        server.settle_heap()
        frozen = gc.get_freeze_count()
        survivors = _cycles(1000)
        gc.collect(1)  # a pass over the young generations, as the collector runs most often
        # The survivors joined the frozen heap: the oldest generation, which a full pass
        # walks with every thread stopped, stays empty.
        assert gc.get_freeze_count() >= frozen + 2000
        assert not any(isinstance(found, _Node) for found in gc.get_objects(generation=2))
        survivors.extend(_cycles(1000))
        gc.collect()  # and what survives a full pass, likewise
        assert gc.get_freeze_count() >= frozen + 4000
        # A full pass walks only what is not frozen: dropped frozen cycles stay until a thaw.
        dropped = weakref.ref(survivors[0])
        survivors.clear()
        gc.collect()
        assert dropped() is not None
        assert gc.get_freeze_count() >= frozen + 4000
    finally:
        gc.callbacks.remove(server._freeze_survivors)
        gc.unfreeze()
        gc.collect()


def test_the_heap_census_counts_frozen_cyclic_garbage_in_a_child_and_leaves_the_heap_frozen():
    import gc

    from medloop.api import server

    gc.collect()
    gc.freeze()
    try:
        frozen = _cycles(3000)
        keep = weakref.ref(frozen[0])
        gc.freeze()
        frozen.clear()  # 6000 objects of cyclic garbage among the frozen ones
        found = server.count_frozen_garbage()
        assert "failed" not in found, found
        assert found["frozen"] >= 6000
        assert found["garbage"] >= 6000
        assert found["garbage_bytes"] >= 6000 * sys.getsizeof(_Node())
        # Counted in the child: this process still holds its frozen heap and the garbage.
        assert keep() is not None
        assert gc.get_freeze_count() >= found["frozen"] - 100
    finally:
        gc.unfreeze()
        gc.collect()


def test_the_census_thaws_only_when_the_frozen_garbage_is_worth_a_full_pass(monkeypatch):
    import gc

    from medloop.api import server

    monkeypatch.setattr(server.HeapCensus, "censuses", collections.deque(maxlen=64))
    gc.collect()
    gc.freeze()
    try:
        frozen = _cycles(500)
        keep = weakref.ref(frozen[0])
        gc.freeze()
        frozen.clear()
        heap = gc.get_freeze_count()
        # 1000 objects of garbage in a frozen heap this size are below the share worth a
        # thaw: no full pass here, the garbage stays (frozen).
        below = server.HeapCensus.look(worth=2000 / heap)
        assert below["garbage"] >= 1000 and not below["thawed"]
        assert keep() is not None and gc.get_freeze_count() >= heap - 100
        # At the share, the heap is thawed and walked once: the frozen garbage is freed.
        at = server.HeapCensus.look(worth=min(1.0, 1000 / heap))
        assert at["thawed"] and at["thaw_ms"] > 0
        assert keep() is None
        assert list(server.HeapCensus.censuses) == [below, at]
    finally:
        gc.unfreeze()
        gc.collect()


def test_without_a_census_answer_the_heap_is_thawed_as_before(monkeypatch):
    import gc

    from medloop.api import server

    def no_answer(answer: int) -> None:
        time.sleep(30)  # a child stuck (say, a finalizer waiting on a lock no thread holds)

    monkeypatch.setattr(server, "_count_in_child", no_answer)
    monkeypatch.setattr(server, "CENSUS_TIMEOUT", 0.5)
    monkeypatch.setattr(server.HeapCensus, "censuses", collections.deque(maxlen=64))
    gc.collect()
    gc.freeze()
    try:
        frozen = _cycles(100)
        keep = weakref.ref(frozen[0])
        gc.freeze()
        frozen.clear()
        started = time.monotonic()
        found = server.HeapCensus.look()
        assert found["failed"] == "the census child did not answer"
        assert time.monotonic() - started < 25  # the stuck child was killed, not waited for
        assert found["thawed"] and keep() is None
    finally:
        gc.unfreeze()
        gc.collect()


def test_the_coalescing_transport_hands_on_every_public_method_of_the_real_one():
    """Every public attribute of an asyncio transport and of uvloop's TCP and Unix transports
    is reachable through ``CoalescingTransport``: ``write`` and ``close`` its own, the rest
    the real transport's own bound methods; and its class has no ``__getattr__`` (which would
    send every attribute look-up on it down the slow path)."""
    import asyncio
    import socket

    import uvloop

    from medloop.api import server

    def public(kind: type) -> set[str]:
        return {name for name in dir(kind) if not name.startswith("_")}

    wanted = public(asyncio.Transport)
    wanted |= public(uvloop.loop.TCPTransport) | public(uvloop.loop.UnixTransport)
    assert wanted == set(server._DELEGATED) | {"write", "close"}
    assert not hasattr(server.CoalescingTransport, "__getattr__")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        real, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        try:
            transport = server.CoalescingTransport(real, loop)  # type: ignore[arg-type]
            for name in server._DELEGATED:
                assert getattr(transport, name) == getattr(real, name), name
            assert transport.is_closing() is False
            assert transport.get_extra_info("socket") is not None
            transport.write(b"a")
            transport.write(b"b")
            await asyncio.sleep(0)
            assert theirs.recv(10) == b"ab"
            transport.close()
            assert real.is_closing()
        finally:
            theirs.close()

    uvloop.run(scenario())
