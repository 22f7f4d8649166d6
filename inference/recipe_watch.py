"""The inference worker follows its line's promoted recipe (issue 21.3).

:class:`RecipeWatch` stands in for the inspector in the worker (``inspect_frame`` and every
other attribute are the current inspector's). A thread asks ``poll()`` for the line's switch
counter every ``poll_s`` seconds (one indexed row read in ``line_recipes``); when it changed,
the same thread builds the new recipe's inspector with ``build()`` - models load off the
verdict path, the worker keeps inspecting with the old one meanwhile - and hands it over.
The worker thread swaps at the start of its next frame, so a frame is inspected wholly by one
recipe (its logged ``recipe`` and ``models`` say which), and closes the old inspector then.

A recipe whose models do not load in the worker is logged and retried after ``retry_s``;
the line goes on with the recipe it has. A poll that fails (database down) is logged and
retried at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from core.frame import Frame
from core.result import InspectionResult

log = logging.getLogger(__name__)


class RecipeWatch:
    """The current inspector of a line, switched to newly promoted recipes between frames."""

    def __init__(
        self,
        line_id: str,
        inspector: Any,
        version: int,
        poll: Callable[[], int],
        build: Callable[[], tuple[int, Any]],
        *,
        poll_s: float = 2.0,
        retry_s: float = 30.0,
    ) -> None:
        """``inspector`` runs the recipe of switch counter ``version``; ``poll()`` returns
        the line's counter now, ``build()`` the counter and inspector of the line's active
        recipe. ``poll_s``: seconds between polls; ``retry_s``: after a failed build."""
        self.line = line_id
        self.current = inspector
        self.version = version
        self._poll, self._build = poll, build
        self.poll_s, self.retry_s = poll_s, retry_s
        self._ready: tuple[int, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"recipe-watch:{line_id}",
                                        daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)

    def inspect_frame(self, frame: Frame) -> InspectionResult:
        """Switch to a newly built inspector if one is ready, then inspect ``frame``."""
        if self._ready is not None:
            self._swap()
        return self.current.inspect_frame(frame)

    def _swap(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return
        old, (self.version, self.current) = self.current, ready
        log.warning("line %s: now inspecting with recipe %s (switch %d)", self.line,
                    self.current.recipe.name, self.version)
        _close(old)

    def _watch(self) -> None:
        target = self.version  # the counter the current (or the ready) inspector runs
        while not self._stop.wait(self.poll_s):
            try:
                wanted = self._poll()
            except Exception as exc:  # noqa: BLE001 - the database may be down: poll again
                log.warning("line %s: recipe switch counter not readable (%s)", self.line, exc)
                continue
            if wanted == target:
                continue
            try:
                version, inspector = self._build()
            except Exception:  # noqa: BLE001 - keep the running recipe; try again later
                log.exception("line %s: promoted recipe (switch %d) not loaded; still "
                              "inspecting with %s", self.line, wanted, self.current.recipe.name)
                self._stop.wait(self.retry_s)
                continue
            with self._lock:
                stale, self._ready = self._ready, (version, inspector)
            if stale is not None:  # built but never used: switched again before a frame
                _close(stale[1])
            target = version

    def close(self) -> None:
        """Stop watching; close the current inspector and one built but not used."""
        self._stop.set()
        self._thread.join(timeout=60)
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            _close(ready[1])
        _close(self.current)


def _close(inspector: Any) -> None:
    close = getattr(inspector, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing the old recipe must not stop the line
            log.exception("closing an inspector failed")
