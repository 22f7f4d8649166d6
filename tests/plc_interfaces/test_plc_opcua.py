"""The OPC UA server against real asyncua clients over TCP (Basic256Sha256 Sign & Encrypt)
and the real Redis: endpoints and certificate, the client-certificate trust list (trusted,
rejected, accepted by moving), every result as a ResultReady event, the acknowledge method
(users only), the fail-safe UNKNOWN, and no subscriptions left behind by clients that close
without deleting them or vanish."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.bus import publish_result, set_camera_status
from core.settings import Settings
from plc.opcua import NAMESPACE, OpcUaServer
from plc.opcua_trust import cert_info
from tests.plc_interfaces.plc_helpers import (
    REDIS_URL,
    Line,
    LoopThread,
    free_port,
    wait_listening,
)

pytestmark = pytest.mark.redis
PASSWORD = "s3cret-plc"


class Running:
    """A started :class:`OpcUaServer` in its own loop thread."""

    def __init__(self, settings: Settings, sweep_s: float = 1.0) -> None:
        self.settings = settings
        self.server: OpcUaServer | None = None

        async def main(stop: asyncio.Event) -> None:
            r = aredis.Redis.from_url(settings.redis_url, socket_timeout=2.0)
            self.server = OpcUaServer(settings, r, sweep_s=sweep_s)
            await self.server.start()
            try:
                await self.server.run(stop)
            finally:
                await self.server.stop()
                await r.aclose()

        self.thread = LoopThread(main)
        wait_listening(settings.opcua_port, timeout_s=60, alive=self.thread.thread.is_alive)
        assert self.thread.thread.is_alive(), self.thread.error

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.settings.opcua_port}/lineinspect/"

    def subscriptions(self) -> int:
        assert self.server is not None
        return len(self.server.server.iserver.subscription_service.subscriptions)


def _make_cert(d: Path, uri: str = "urn:lineinspect:test:client") -> tuple[Path, Path]:
    """A self-signed client application certificate (DER) and its key."""
    d.mkdir(parents=True, exist_ok=True)
    key, cert = d / "key.pem", d / "cert.der"
    asyncio.run(setup_self_signed_certificate(
        key, cert, uri, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "test client"}))
    return cert, key


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _make_cert(tmp_path_factory.mktemp("opcua-client"))


@pytest.fixture()
def opcua(line_id: str, tmp_path: Path,
          client_cert: tuple[Path, Path]) -> Iterator[Callable[..., Running]]:
    """Starts servers; ``client_cert`` is in their trust list unless ``trust_client=False``."""
    started: list[Running] = []

    def start(sweep_s: float = 1.0, trust_client: bool = True, **overrides: Any) -> Running:
        values: dict[str, Any] = {"redis_url": REDIS_URL, "plc_lines": line_id,
                                  "opcua_port": free_port(), "opcua_password": PASSWORD,
                                  "opcua_cert_dir": tmp_path / "pki"}
        values.update(overrides)
        settings = Settings(**values)
        if trust_client:
            settings.opcua_trusted_path.mkdir(parents=True, exist_ok=True)
            shutil.copy(client_cert[0], settings.opcua_trusted_path / "test-client.der")
        started.append(Running(settings, sweep_s))
        return started[-1]

    yield start
    for s in started:
        s.thread.close()


async def _secure(c: Client, cert: tuple[Path, Path]) -> Client:
    """``c`` on Basic256Sha256 Sign & Encrypt with ``cert``, under the certificate's
    application URI (the server checks that they match)."""
    c.application_uri = cert_info(cert[0]).application_uri
    await c.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert[0]},{cert[1]}")
    return c


async def _client(url: str, cert: tuple[Path, Path], user: str | None = None) -> Client:
    c = await _secure(Client(url, timeout=20), cert)
    if user is not None:
        c.set_user(user)
        c.set_password(PASSWORD)
    await c.connect()
    return c


async def _var(c: Client, line: str, name: str) -> Any:
    ns = await c.get_namespace_index(NAMESPACE)
    return await c.get_node(ua.NodeId(f"VisionSystem.Lines.{line}.{name}", ns)).read_value()


def test_only_the_encrypted_endpoint_and_a_certificate(
    opcua: Callable[..., Running], tmp_path: Path, client_cert: tuple[Path, Path]
) -> None:
    srv = opcua()
    assert (tmp_path / "pki" / "server_cert.der").is_file()
    assert (tmp_path / "pki" / "server_key.pem").stat().st_mode & 0o077 == 0

    async def check() -> None:
        c = Client(srv.url, timeout=20)
        endpoints = await c.connect_and_get_server_endpoints()
        policies = {(e.SecurityPolicyUri.split("#")[-1], e.SecurityMode) for e in endpoints}
        assert policies == {("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)}
        with pytest.raises(Exception):  # noqa: B017 - asyncua raises several kinds here
            plain = Client(srv.url, timeout=10)
            await plain.connect()
        secure = await _client(srv.url, client_cert)
        assert await _var(secure, srv.settings.plc_line_ids[0], "State") in (3, 4)
        await secure.disconnect()

    asyncio.run(check())
    insecure = opcua(opcua_allow_insecure=True, opcua_cert_dir=tmp_path / "pki2")

    async def check_insecure() -> None:
        endpoints = await Client(insecure.url, timeout=20).connect_and_get_server_endpoints()
        assert any(e.SecurityMode == ua.MessageSecurityMode.None_ for e in endpoints)

    asyncio.run(check_insecure())


def _refused(url: str, cert: tuple[Path, Path], client: Client | None = None) -> str:
    """Connect ``client`` (a new one by default) and return the status the server refused
    it with (the test fails if it gets a session)."""

    async def go() -> str:
        c = await _secure(client or Client(url, timeout=20), cert)
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await c.connect()
        c.disconnect_socket()
        return type(refused.value).__name__

    return asyncio.run(go())


def _reads(url: str, cert: tuple[Path, Path], line_id: str) -> int:
    """A session with ``cert`` that reads the line's State."""

    async def go() -> int:
        c = await _client(url, cert)
        try:
            return await _var(c, line_id, "State")
        finally:
            await c.disconnect()

    return asyncio.run(go())


def test_only_trusted_client_certificates_get_a_session(
    opcua: Callable[..., Running], tmp_path: Path, client_cert: tuple[Path, Path]
) -> None:
    """Trusted connects; an unknown client is refused and its certificate lands in rejected/
    (also when it hides the certificate from CreateSession, where asyncua skips the
    validator); moving that file to trusted/ lets it in (no restart); removing it locks it
    out again."""
    srv = opcua()
    trusted, rejected = tmp_path / "pki" / "trusted", tmp_path / "pki" / "rejected"
    line_id = srv.settings.plc_line_ids[0]
    assert _reads(srv.url, client_cert, line_id) in (3, 4)
    stranger = _make_cert(tmp_path / "stranger", "urn:somewhere:stranger")
    assert _refused(srv.url, stranger) == "BadCertificateUntrusted"
    assert _refused(srv.url, stranger) == "BadCertificateUntrusted"
    files = list(rejected.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == stranger[0].read_bytes()
    assert [p.name for p in trusted.iterdir()] == ["test-client.der"]
    hiding = Client(srv.url, timeout=20)
    create_session = hiding.uaclient.create_session

    async def without_certificate(params: ua.CreateSessionParameters) -> Any:
        params.ClientCertificate = None  # refused at ActivateSession, by the channel's one
        return await create_session(params)

    hiding.uaclient.create_session = without_certificate  # type: ignore[method-assign]
    assert _refused(srv.url, stranger, hiding) == "BadCertificateUntrusted"
    shutil.move(files[0], trusted / files[0].name)  # what the administrator does
    assert _reads(srv.url, stranger, line_id) in (3, 4)
    (trusted / files[0].name).unlink()
    assert _refused(srv.url, stranger) == "BadCertificateUntrusted"
    assert _reads(srv.url, client_cert, line_id) in (3, 4)


def test_trust_all_clients_admits_unknown_ones_and_keeps_them_in_rejected(
    opcua: Callable[..., Running], tmp_path: Path, client_cert: tuple[Path, Path]
) -> None:
    """Commissioning: ``opcua_trust_all_clients`` lets an unknown client in; its certificate
    is still written to rejected/ for the administrator to accept before switching it off."""
    srv = opcua(trust_client=False, opcua_trust_all_clients=True)
    assert _reads(srv.url, client_cert, srv.settings.plc_line_ids[0]) in (3, 4)
    [stored] = (tmp_path / "pki" / "rejected").iterdir()
    assert stored.read_bytes() == client_cert[0].read_bytes()
    assert list((tmp_path / "pki" / "trusted").iterdir()) == []


class Collector:
    """Subscription handler collecting ResultReady events."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.events.append(event)

    async def wait_for(self, n: int) -> None:
        """Until ``n`` events arrived (at most 20 s)."""
        for _ in range(400):
            if len(self.events) >= n:
                return
            await asyncio.sleep(0.05)

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        """Data changes are not looked at."""

    def status_change_notification(self, status: Any) -> None:
        """Subscription status changes are not looked at."""


async def _result_events(c: Client, line_id: str) -> tuple[Any, Collector]:
    """Subscribe to the line object's ResultReady events: the line object and the events."""
    ns = await c.get_namespace_index(NAMESPACE)
    obj = c.get_node(ua.NodeId(f"VisionSystem.Lines.{line_id}", ns))
    etype = await c.nodes.base_event_type.get_child(f"{ns}:ResultReadyEventType")
    handler = Collector()
    sub = await c.create_subscription(20, handler)
    await sub.subscribe_events(obj, etype)
    await asyncio.sleep(0.3)  # the subscription is live before the results
    return obj, handler


def test_every_result_is_an_event_and_the_handshake(
    opcua: Callable[..., Running], line: Line, client_cert: tuple[Path, Path]
) -> None:
    srv = opcua()

    async def check() -> None:
        c = await _client(srv.url, client_cert)
        ns = await c.get_namespace_index(NAMESPACE)
        obj, handler = await _result_events(c, line.line_id)
        for i in range(1, 41):
            line.publish("NG" if i % 2 else "OK")
        await handler.wait_for(40)
        ids = [e.ResultId for e in handler.events]
        assert ids == list(range(1, 41))
        assert [e.ResultState for e in handler.events] == [1 if i % 2 else 0
                                                           for i in range(1, 41)]
        ng = handler.events[0]
        assert (ng.Verdict, ng.FrameId, ng.JobId) == ("NG", 1, "steel-strip")
        assert ng.DefectSummary == '{"scratch": 2}' and ng.ProcessingTimeMs == 12.5
        assert await _var(c, line.line_id, "LastResultId") == 40
        assert await _var(c, line.line_id, "WorstSinceAck") == 1
        assert await _var(c, line.line_id, "NgSinceAck") == 20
        assert await _var(c, line.line_id, "NgCount") == 20
        ack = ua.NodeId(f"VisionSystem.Lines.{line.line_id}.Acknowledge", ns)
        with pytest.raises(ua.UaStatusCodeError):  # anonymous sessions may not acknowledge
            await obj.call_method(ack, ua.Variant(40, ua.VariantType.UInt32))
        await c.disconnect()
        u = await _client(srv.url, client_cert, user="plc")
        uobj = u.get_node(obj.nodeid)
        line.beat()
        await uobj.call_method(ack, ua.Variant(40, ua.VariantType.UInt32))
        assert await _var(u, line.line_id, "AckResultId") == 40
        assert await _var(u, line.line_id, "WorstSinceAck") == 0
        assert await _var(u, line.line_id, "Pending") == 0
        with pytest.raises(ua.UaStatusCodeError):  # beyond the last result id
            await uobj.call_method(ack, ua.Variant(41, ua.VariantType.UInt32))
        reset = ua.NodeId(f"VisionSystem.Lines.{line.line_id}.ResetNgCount", ns)
        await uobj.call_method(reset)
        assert await _var(u, line.line_id, "NgCount") == 0
        await u.disconnect()

    asyncio.run(check())


def test_wrong_password_is_refused(opcua: Callable[..., Running],
                                   client_cert: tuple[Path, Path]) -> None:
    srv = opcua()

    async def check() -> None:
        c = await _secure(Client(srv.url, timeout=20), client_cert)
        c.set_user("plc")
        c.set_password("wrong")
        with pytest.raises(ua.UaStatusCodeError):
            await c.connect()

    asyncio.run(check())


def test_stale_line_and_dead_camera_read_unknown(
    opcua: Callable[..., Running], line: Line, redis_client: redis.Redis,
    client_cert: tuple[Path, Path]
) -> None:
    """A line that stops producing reads UNKNOWN (State 2) once its last verdict is older
    than stale_after_ms; a dead camera reads UNKNOWN (State 3)."""
    srv = opcua()

    async def wait_for(c: Client, name: str, want: Any) -> Any:
        got = None
        for _ in range(200):
            got = await _var(c, line.line_id, name)
            if got == want:
                return got
            await asyncio.sleep(0.05)
        return got

    async def check() -> None:
        c = await _client(srv.url, client_cert)
        line.publish("OK", stale_after_ms=60000)
        assert await wait_for(c, "LastResultId", 1) == 1
        assert (await _var(c, line.line_id, "Verdict"), await _var(c, line.line_id, "State")) \
            == (0, 1)
        line.publish("NG", stale_after_ms=400)  # then the line stops
        assert await wait_for(c, "State", 2) == 2
        assert await _var(c, line.line_id, "Verdict") == 2
        assert await _var(c, line.line_id, "StateReason") == "stale"
        line.publish("OK")
        set_camera_status(redis_client, line.line_id, False)
        assert await wait_for(c, "State", 3) == 3
        assert await _var(c, line.line_id, "Verdict") == 2
        await c.disconnect()

    asyncio.run(check())


def test_vanished_clients_leave_no_subscriptions(
    opcua: Callable[..., Running], line: Line, client_cert: tuple[Path, Path]
) -> None:
    """asyncua keeps subscriptions after CloseSession(DeleteSubscriptions=False) and after a
    client vanishes; the server's sweep removes them, round after round (here called by
    the test; the server calls it every second)."""
    srv = opcua(sweep_s=3600.0)
    assert srv.server is not None

    async def round_() -> None:
        clients = [await _client(srv.url, client_cert) for _ in range(4)]
        for c in clients:
            sub = await c.create_subscription(100, Collector())
            await sub.subscribe_data_change(c.get_node(ua.ObjectIds.Server_ServerStatus))
        await clients[0].uaclient.close_session(delete_subscriptions=False)
        clients[0].disconnect_socket()
        await clients[1].uaclient.close_session(delete_subscriptions=False)
        clients[1].disconnect_socket()
        for c in clients[2:]:  # vanish: the TCP connection is cut, no goodbye
            c.uaclient.protocol.transport.abort()
        await asyncio.sleep(0.3)

    for _ in range(3):
        asyncio.run(round_())
        assert srv.subscriptions() >= 2  # asyncua kept the closed and the vanished ones
        srv.thread.call(srv.server.sweep())
        assert srv.subscriptions() == 0


def test_a_missed_part_is_a_result_ready_event_with_its_part_id(
    opcua: Callable[..., Running], line: Line, client_cert: tuple[Path, Path],
    redis_client: redis.Redis,
) -> None:
    """Trigger mode (issue 18.2): the events carry the part id, and a part whose image never
    arrived is an UNKNOWN event with its reason."""
    srv = opcua()
    parts = [(11, "OK", None), (12, "UNKNOWN", "grab_failed"), (13, "UNKNOWN", "part_missed"),
             (14, "NG", None)]

    async def check() -> None:
        c = await _client(srv.url, client_cert)
        _, handler = await _result_events(c, line.line_id)
        line.beat()
        for part, verdict, reason in parts:
            record = {"line_id": line.line_id, "frame_id": part, "part_id": part,
                      "unknown_reason": reason, "verdict": verdict,
                      "code": {"OK": 0, "NG": 1, "UNKNOWN": 2}[verdict],
                      "captured_at": "2026-12-06T18:00:00Z", "defects": []}
            publish_result(redis_client, line.line_id, record)
        await handler.wait_for(len(parts))
        got = [(e.PartId, e.Verdict, e.UnknownReason, e.ResultState) for e in handler.events]
        assert got == [(11, "OK", "", 0), (12, "UNKNOWN", "grab_failed", 2),
                       (13, "UNKNOWN", "part_missed", 2), (14, "NG", "", 1)]
        for name, want in (("PartId", 14), ("UnknownReason", ""), ("FrameId", 14)):
            assert await _var(c, line.line_id, name) == want
        captured = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        publish_result(redis_client, line.line_id, {
            "line_id": line.line_id, "frame_id": 15, "part_id": 15, "verdict": "UNKNOWN",
            "unknown_reason": "part_missed", "code": 2, "captured_at": captured,
            "defects": [], "stale_after_ms": 60000})
        await handler.wait_for(len(parts) + 1)
        got_vars = {n: await _var(c, line.line_id, n) for n in
                    ("PartId", "UnknownReason", "VerdictResultId", "Verdict", "StateReason")}
        assert got_vars == {"PartId": 15, "UnknownReason": "part_missed",
                            "VerdictResultId": 5, "Verdict": 2, "StateReason": ""}
        await c.disconnect()

    asyncio.run(check())
