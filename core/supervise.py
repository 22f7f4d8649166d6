"""Supervision of the long-running loops of a process (docs/CONTRACT.md, section 6).

Every loop (grab, inference, heartbeat, embedded Redis) runs under :func:`supervise`: an
exception, or a return while the process is not stopping, is logged with its traceback,
counted (``lineinspect_loop_restarts_total{loop}``) and the loop is started again after a
back-off (0.5 s doubling to 30 s, reset after a minute of healthy running). After
``max_failures`` consecutive failures it gives up and calls ``on_fatal`` (the runner stops
the process with a non-zero exit status, so that systemd/Docker restart it). A target that
knows it cannot go on (it supervises parts of its own, e.g. worker processes that keep dying)
raises :class:`GiveUp`: no restart, ``on_fatal`` at once.

Loops also say how they are doing between failures (:meth:`LoopRegistry.beat`,
:meth:`LoopRegistry.trouble`: the inference worker backing off from Redis ``MISCONF``). The
process-wide :data:`LOOPS` registry is what ``/readyz`` (``loops``) and ``/healthz`` read: a
loop in trouble, restarting or given up makes the service not ready; a loop given up makes
it not live either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from core.metrics import LOOP_RESTARTS, LOOP_UP

log = logging.getLogger(__name__)

#: A run longer than this resets the back-off and the consecutive-failure count.
HEALTHY_RUN_S = 60.0


class GiveUp(Exception):
    """Raised by a supervised target that cannot go on: :func:`supervise` gives the loop up
    without restarting it (``on_fatal`` is called with the message)."""


@dataclass
class LoopState:
    """What one supervised loop last reported."""

    name: str
    #: running now (False while restarting or after it stopped)
    running: bool = False
    #: None while healthy, else why not (the last error)
    trouble: str | None = None
    restarts: int = 0
    #: Unix time of the last beat or state change
    last_beat: float = 0.0
    #: given up: the process is going down
    fatal: bool = False
    #: stopped on purpose (shutdown)
    stopped: bool = False

    @property
    def ready(self) -> bool:
        """Running without trouble (or stopped on purpose)."""
        return self.stopped or (self.running and self.trouble is None and not self.fatal)


class LoopRegistry:
    """Thread-safe states of the supervised loops of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: dict[str, LoopState] = {}

    def update(self, name: str, **changes: Any) -> LoopState:
        """Set fields of a loop's state (created on first use) and stamp ``last_beat``."""
        with self._lock:
            state = self._loops.setdefault(name, LoopState(name))
            for key, value in changes.items():
                setattr(state, key, value)
            state.last_beat = time.time()
            return state

    def beat(self, name: str) -> None:
        """The loop made progress: running, no trouble."""
        self.update(name, running=True, trouble=None, stopped=False)

    def trouble(self, name: str, why: str) -> None:
        """The loop runs but cannot do its work (it backs off and retries)."""
        self.update(name, running=True, trouble=why)

    def forget(self, name: str) -> None:
        """Drop a loop (tests, or a loop that ended on purpose)."""
        with self._lock:
            self._loops.pop(name, None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every loop's state as JSON-able dicts, with ``ready``."""
        with self._lock:
            return {n: {**asdict(s), "ready": s.ready} for n, s in self._loops.items()}

    def fatal(self) -> list[str]:
        """Names of the loops that were given up."""
        with self._lock:
            return [n for n, s in self._loops.items() if s.fatal]


#: The loops of this process.
LOOPS = LoopRegistry()


def supervise(
    name: str,
    target: Callable[[], object],
    stop: threading.Event,
    *,
    backoff_initial_s: float = 0.5,
    backoff_max_s: float = 30.0,
    max_failures: int | None = None,
    on_fatal: Callable[[str], None] | None = None,
    registry: LoopRegistry = LOOPS,
) -> None:
    """Run ``target`` until ``stop`` is set, restarting it with back-off when it raises or
    returns early; after ``max_failures`` consecutive failures call ``on_fatal(reason)``."""
    backoff, failures = backoff_initial_s, 0
    up = LOOP_UP.labels(loop=name)
    while not stop.is_set():
        registry.beat(name)
        up.set(1)
        started = time.monotonic()
        try:
            target()
            if stop.is_set():
                break
            reason = "returned while the process was not stopping"
            log.error("loop %s %s: restarting", name, reason)
        except GiveUp as exc:
            _give_up(name, f"{exc}", registry, on_fatal)
            up.set(0)
            return
        except Exception as exc:  # noqa: BLE001 - the point: nothing kills a loop silently
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("loop %s failed: restarting in %.1f s", name, backoff)
        up.set(0)
        LOOP_RESTARTS.labels(loop=name).inc()
        if time.monotonic() - started > HEALTHY_RUN_S:
            backoff, failures = backoff_initial_s, 0
        failures += 1
        state = registry.update(name, running=False, trouble=reason)
        state.restarts += 1
        if max_failures is not None and failures >= max_failures:
            _give_up(name, f"failed {failures} times in a row ({reason})", registry, on_fatal)
            return
        stop.wait(backoff)
        backoff = min(backoff * 2, backoff_max_s)
    registry.update(name, running=False, stopped=True, trouble=None)
    up.set(0)


def _give_up(
    name: str, why: str, registry: LoopRegistry, on_fatal: Callable[[str], None] | None
) -> None:
    """Mark loop ``name`` given up and tell ``on_fatal``."""
    registry.update(name, running=False, fatal=True, trouble=why)
    log.critical("loop %s: giving up: %s", name, why)
    if on_fatal is not None:
        on_fatal(f"{name}: {why}")


def start_supervised(
    name: str, target: Callable[[], object], stop: threading.Event, **options: Any
) -> threading.Thread:
    """:func:`supervise` in a new (non-daemon) thread named ``name``; returns the thread."""
    thread = threading.Thread(
        target=supervise, args=(name, target, stop), kwargs=options, name=name
    )
    thread.start()
    return thread
