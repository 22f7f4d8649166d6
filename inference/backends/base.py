"""What every inference backend offers: load an ONNX artifact, its metadata, run a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class BackendUnavailable(RuntimeError):
    """This engine cannot run this model here (not installed, cannot read the graph, ...)."""


class Backend(Protocol):
    """One ONNX artifact loaded on one engine (construction loads it).

    ``run`` is thread-safe and returns a fresh array owned by the caller.
    """

    #: ``onnxruntime`` or ``openvino``
    engine: str
    path: Path

    def metadata_props(self) -> dict[str, str]:
        """The file's ``metadata_props`` (validated by :class:`core.model_meta.ModelMeta`)."""
        ...

    def input_shape(self) -> list[Any]:
        """Shape of input 0: ints for fixed dimensions, a name or None for dynamic ones."""
        ...

    def output_shape(self) -> list[Any]:
        """Shape of output 0, as :meth:`input_shape`."""
        ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Output 0 (logits) of one float32 NCHW batch."""
        ...

    def describe(self) -> str:
        """Engine, version and configuration in one line (logs, benchmark notes)."""
        ...
