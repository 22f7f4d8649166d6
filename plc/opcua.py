"""OPC UA server (asyncua): the OPC 40100 (Machine Vision) minimum that fits lineinspect.

Address space (namespace ``urn:lineinspect:plc``, string node ids; docs/PLC.md):

* ``VisionSystem`` - ``VisionSystem.State`` (``Operational`` while Redis answers, else
  ``Error``: the states of the OPC 40100 vision state machine), ``VisionSystem.Heartbeat``;
* ``VisionSystem.Lines.<line>`` per line - the variables of :data:`VARIABLES` (the same
  :class:`core.plc.PlcStatus` as Modbus and REST: fail-safe verdict, result ids, NG since
  acknowledge...) and the methods ``Acknowledge(ResultId)`` and ``ResetNgCount()``;
* ``ResultReadyEventType`` (after 40100's ``ResultReadyEventType``; browse path
  ``Types/EventTypes/BaseEventType/<ns>:ResultReadyEventType``), fired by the line
  object for every new result id: ``LineId``, ``ResultId``, ``ResultState`` (verdict code),
  ``Verdict``, ``FrameId``, ``JobId`` (recipe), ``DefectSummary`` (JSON defects per class),
  ``ProcessingTimeMs``, ``PartId`` (trigger mode; 0 in free-run) and ``UnknownReason``
  (``grab_failed``, ``part_missed``, ``overloaded`` for an uninspected result, else empty);
  the line variables ``PartId`` and ``UnknownReason`` are those of the verdict shown.

Security: only ``Basic256Sha256`` Sign & Encrypt unless ``opcua_allow_insecure`` (asyncua
would offer ``NoSecurity`` too); a self-signed application certificate is created on first
start under ``opcua_cert_path``. A client gets a session only with a trusted application
certificate (:mod:`plc.opcua_trust`: the trusted folder, unknown ones written to rejected).
Anonymous sessions read, browse and subscribe; calling the methods (and writing) needs the
user ``opcua_user``/``opcua_password``.

asyncua keeps a session's subscriptions after ``CloseSession(DeleteSubscriptions=False)``
and after a client vanishes with live subscriptions (kept for a transfer until the session
times out, up to 10 min by default). We offer no transfer: :meth:`OpcUaServer.sweep` deletes
every subscription whose session has no live connection, every second, and sessions time
out after at most 60 s.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import socket
import time
from typing import Any

import redis
import redis.asyncio as aredis
from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.bus import result_events_channel
from core.results import aread_line
from core.settings import Settings
from plc.opcua_trust import TrustList
from plc.state import HandshakeError, LineView, PlcState

log = logging.getLogger(__name__)

NAMESPACE = "urn:lineinspect:plc"
APP_URI = "urn:lineinspect:plc:server"
#: Line variables: browse name -> OPC UA type.
VARIABLES: dict[str, ua.VariantType] = {
    "State": ua.VariantType.UInt16, "StateReason": ua.VariantType.String,
    "Verdict": ua.VariantType.Int32, "VerdictName": ua.VariantType.String,
    "WorstSinceAck": ua.VariantType.Int32, "LastResultId": ua.VariantType.UInt32,
    "VerdictResultId": ua.VariantType.UInt32, "FrameId": ua.VariantType.UInt64,
    "NgCount": ua.VariantType.UInt32, "AckResultId": ua.VariantType.UInt32,
    "Pending": ua.VariantType.UInt32, "NgSinceAck": ua.VariantType.UInt32,
    "Overrun": ua.VariantType.Boolean, "Lost": ua.VariantType.UInt32,
    "AgeMs": ua.VariantType.Double, "CameraConnected": ua.VariantType.Boolean,
    "Recipe": ua.VariantType.String, "PartId": ua.VariantType.UInt64,
    "UnknownReason": ua.VariantType.String,
}
EVENT_FIELDS: list[tuple[str, ua.VariantType]] = [
    ("LineId", ua.VariantType.String), ("ResultId", ua.VariantType.UInt32),
    ("ResultState", ua.VariantType.Int32), ("Verdict", ua.VariantType.String),
    ("FrameId", ua.VariantType.UInt64), ("JobId", ua.VariantType.String),
    ("DefectSummary", ua.VariantType.String), ("ProcessingTimeMs", ua.VariantType.Double),
    ("PartId", ua.VariantType.UInt64), ("UnknownReason", ua.VariantType.String),
]
#: Longest wait for a result event before the variables are refreshed anyway (staleness).
REFRESH_S = 0.05
SWEEP_S = 1.0
_WRITES = {ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
           ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)}


def values(view: LineView) -> dict[str, Any]:
    """The line variables of a :class:`LineView`."""
    s, a = view.status, view.status.answer
    age = a.get("age_ms")
    return {
        "State": s.state, "StateReason": a.get("reason") or "", "Verdict": s.code,
        "VerdictName": a["verdict"], "WorstSinceAck": s.worst_code,
        "LastResultId": s.last_result_id, "VerdictResultId": int(a.get("result_id") or 0),
        "FrameId": int(a.get("frame_id") or 0), "NgCount": view.ng_count,
        "AckResultId": s.cursor, "Pending": s.pending, "NgSinceAck": s.ng_since,
        "Overrun": s.overrun, "Lost": s.lost, "AgeMs": float(-1 if age is None else age),
        "CameraConnected": bool(a.get("camera_connected")), "Recipe": a.get("recipe") or "",
        "PartId": int(a.get("part_id") or 0),  # 0: free-run, not a part
        "UnknownReason": a.get("unknown_reason") or "",
    }


class PlcUsers:
    """Anonymous users read; the configured user may also call and write. Either only on a
    secure channel whose client certificate the trust list accepted."""

    def __init__(self, settings: Settings, trust: TrustList) -> None:
        """Credentials from ``settings`` (an empty password disables the user)."""
        self.user, self.password = settings.opcua_user, settings.opcua_password
        self.trust, self.insecure = trust, settings.opcua_allow_insecure

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: bytes | None = None) -> User | None:
        """asyncua's user-manager hook (``ActivateSession``; ``certificate``: the secure
        channel's): None rejects the session."""
        if not self.trust.validated(certificate, self.insecure):
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
        if username is None:
            return User(role=UserRole.Anonymous)
        if self.password and secrets.compare_digest(username.encode(), self.user.encode()) \
                and secrets.compare_digest((password or "").encode(), self.password.encode()):
            return User(role=UserRole.User, name=username)
        return None


class PlcRuleset(SimpleRoleRuleset):
    """Every session may read, browse and subscribe; only users may call or write."""

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        """asyncua's permission hook."""
        if action_type_id in _WRITES:
            return user.role in (UserRole.User, UserRole.Admin)
        if user.role == UserRole.Anonymous:
            return action_type_id in self._permission_dict[UserRole.User]
        return super().check_validity(user, action_type_id, body)


class OpcUaServer:
    """The OPC UA server of ``settings.plc_line_ids`` on ``opcua_host:opcua_port``."""

    def __init__(self, settings: Settings, r: aredis.Redis, sweep_s: float = SWEEP_S) -> None:
        """Nothing starts before :meth:`start`; ``sweep_s``: period of :meth:`sweep`."""
        self.settings, self.r, self.sweep_s = settings, r, sweep_s
        self.state = PlcState(r, "opcua", acknowledged=True)
        self.trust = TrustList.from_settings(settings)
        self.server = Server(user_manager=PlcUsers(settings, self.trust))
        self.lines = settings.plc_line_ids
        self.nodes: dict[str, dict[str, Node]] = {}
        self.cache: dict[str, dict[str, Any]] = {}
        self.events: dict[str, Any] = {}
        self.emitted: dict[str, int] = {}
        self.url = f"opc.tcp://{settings.opcua_host}:{settings.opcua_port}/lineinspect/"
        self.ns = 0

    async def _certificate(self) -> None:
        d = self.settings.opcua_cert_path
        d.mkdir(parents=True, exist_ok=True)
        key, cert = d / "server_key.pem", d / "server_cert.der"
        await setup_self_signed_certificate(
            key, cert, APP_URI, socket.gethostname(),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "lineinspect PLC server", "organizationName": "lineinspect"},
        )
        key.chmod(0o600)
        await self.server.load_certificate(str(cert))
        await self.server.load_private_key(str(key))

    async def _build(self) -> None:
        srv = self.server
        await srv.init()
        srv.set_endpoint(self.url)
        srv.set_server_name("lineinspect")
        await srv.set_application_uri(APP_URI)
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        if self.settings.opcua_allow_insecure:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        srv.set_security_policy(policies, permission_ruleset=PlcRuleset())
        srv.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        srv.iserver.max_session_timeout_ms = 60_000
        await self._certificate()
        await self.trust.load()
        srv.set_certificate_validator(self.trust.validate)
        self.ns = ns = await srv.register_namespace(NAMESPACE)
        etype = await srv.create_custom_event_type(
            ns, "ResultReadyEventType", ua.ObjectIds.BaseEventType, EVENT_FIELDS)
        self.event_type = etype
        vs = await srv.nodes.objects.add_object(ua.NodeId("VisionSystem", ns), "VisionSystem")
        self.system = {
            "State": await vs.add_variable(ua.NodeId("VisionSystem.State", ns), "State",
                                           "Operational", ua.VariantType.String),
            "Heartbeat": await vs.add_variable(ua.NodeId("VisionSystem.Heartbeat", ns),
                                               "Heartbeat", 0, ua.VariantType.UInt32),
        }
        folder = await vs.add_folder(ua.NodeId("VisionSystem.Lines", ns), "Lines")
        for line in self.lines:
            await self._add_line(folder, line, etype)

    async def _add_line(self, folder: Node, line: str, etype: Node) -> None:
        ns, base = self.ns, f"VisionSystem.Lines.{line}"
        obj = await folder.add_object(ua.NodeId(base, ns), line)
        await obj.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        await self.server.nodes.server.add_reference(obj.nodeid, ua.ObjectIds.HasNotifier)
        self.nodes[line] = {
            name: await obj.add_variable(ua.NodeId(f"{base}.{name}", ns), name,
                                         ua.Variant(ua.get_default_value(vt), vt))
            for name, vt in VARIABLES.items()
        }

        async def acknowledge(parent: ua.NodeId, result_id: ua.Variant) -> list[ua.Variant]:
            try:
                await self.state.acknowledge(line, int(result_id.Value))
            except HandshakeError as exc:
                raise ua.UaStatusCodeError(ua.StatusCodes.BadOutOfRange) from exc
            await self.refresh(line)
            return []

        async def reset(parent: ua.NodeId) -> list[ua.Variant]:
            await self.state.reset_ng_count(line)
            await self.refresh(line)
            return []

        await obj.add_method(ua.NodeId(f"{base}.Acknowledge", ns), "Acknowledge", acknowledge,
                             [ua.VariantType.UInt32], [])
        await obj.add_method(ua.NodeId(f"{base}.ResetNgCount", ns), "ResetNgCount", reset,
                             [], [])
        self.events[line] = await self.server.get_event_generator(etype, obj)

    async def refresh(self, line: str) -> LineView:
        """Read the line from Redis, write the variables that changed, fire the result
        events of every result id not announced yet."""
        view = await self.state.view(line)
        new = values(view)
        old = self.cache.setdefault(line, {})
        for name, value in new.items():
            if old.get(name) != value:
                await self.nodes[line][name].write_value(ua.Variant(value, VARIABLES[name]))
                old[name] = value
        await self._announce(line, view.status.last_result_id)
        return view

    async def _announce(self, line: str, last: int) -> None:
        if line not in self.emitted:  # no history at start-up
            self.emitted[line] = last
        while self.emitted[line] < last:
            try:
                _, page = await aread_line(self.r, line, self.emitted[line], 100)
            except (redis.RedisError, OSError, ValueError):
                return
            gen = self.events[line]
            for res in page.results:
                ev = gen.event
                ev.LineId, ev.ResultId = line, int(res["result_id"])
                ev.ResultState, ev.Verdict = int(res.get("code") or 0), str(res.get("verdict"))
                ev.FrameId, ev.JobId = int(res.get("frame_id") or 0), str(res.get("recipe") or "")
                ev.DefectSummary = json.dumps(res.get("counts") or {})
                ev.ProcessingTimeMs = float(res.get("latency_ms") or 0.0)
                ev.PartId = int(res.get("part_id") or 0)  # 0: free-run, not a part
                ev.UnknownReason = str(res.get("unknown_reason") or "")
                ev.Message = ua.LocalizedText(f"{line} result {res['result_id']}: {ev.Verdict}")
                ev.Severity = 700 if ev.ResultState == 1 else 100
                await gen.trigger()
            self.emitted[line] = page.next_after
            if not page.results and not page.lost:
                return

    async def sweep(self) -> int:
        """Delete the subscriptions whose session has no live connection; how many."""
        iserver = self.server.iserver
        live = {c.processor.session.session_id for c in self.server.bserver.clients
                if c.processor.session is not None}
        orphans = [sid for sid, sub in iserver.subscription_service.subscriptions.items()
                   if sub.session_id not in live]
        if orphans:
            await iserver.subscription_service.delete_subscriptions(orphans)
        return len(orphans)

    async def start(self) -> None:
        """Build the address space and listen."""
        await self._build()
        await self.server.start()
        for line in self.lines:
            await self.refresh(line)
        log.info("opcua: %s, lines %s, NoSecurity %s, trusted client certificates in %s",
                 self.url, self.lines, self.settings.opcua_allow_insecure, self.trust.trusted)
        if self.trust.trust_all:
            log.warning("opcua: OPCUA_TRUST_ALL_CLIENTS is on: ANY client certificate gets a "
                        "session (commissioning only; unknown ones are written to %s - move "
                        "them to %s and switch it off)", self.trust.rejected, self.trust.trusted)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh on every result event (Redis pub/sub) and at least every
        :data:`REFRESH_S`; sweep orphaned subscriptions every ``sweep_s``."""
        pubsub = self.r.pubsub()
        subscribed, last_sweep = False, time.monotonic()
        while not stop.is_set():
            try:
                if not subscribed:
                    await pubsub.subscribe(*[result_events_channel(x) for x in self.lines])
                    subscribed = True
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=REFRESH_S)
                state = "Operational"
            except (redis.RedisError, OSError):
                subscribed, state = False, "Error"
                await asyncio.sleep(REFRESH_S)
            for line in self.lines:
                await self.refresh(line)
            await self.system["State"].write_value(ua.Variant(state, ua.VariantType.String))
            await self.system["Heartbeat"].write_value(
                ua.Variant(int(time.monotonic() * 10) & 0xFFFFFFFF, ua.VariantType.UInt32))
            if time.monotonic() - last_sweep >= self.sweep_s:
                last_sweep = time.monotonic()
                await self.sweep()
        await pubsub.aclose()

    async def stop(self) -> None:
        """Stop listening."""
        await self.server.stop()


async def serve(settings: Settings, stop: asyncio.Event | None = None,
                started: asyncio.Event | None = None) -> None:
    """Run the OPC UA server until ``stop`` is set (or forever)."""
    from core.redis_conn import redis_url

    r = aredis.Redis.from_url(redis_url(settings), socket_timeout=2.0)
    server = OpcUaServer(settings, r)
    await server.start()
    # The standard address space is ~500,000 objects: out of the collector's reach from now
    # on, so no full collection walks it while results are being announced (one took up to
    # 1.8 s during start-up on the busy 2-core machine).
    gc.freeze()
    if started is not None:
        started.set()
    try:
        await server.run(stop or asyncio.Event())
    finally:
        await server.stop()
        await r.aclose()
