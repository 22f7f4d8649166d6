"""The ground layer: the contracts every other package shares, importing none of them.

Settings (:mod:`core.settings`), the recipe schema (:mod:`core.recipe`), metric definitions
(:mod:`core.metrics`), stage timers (:mod:`core.stages`), the messages (:mod:`core.frame`,
:mod:`core.result`), the Redis key schema and stream helpers (:mod:`core.bus`,
:mod:`core.redis_conn`), the PLC answer rule (:mod:`core.plc`), the model artifact metadata
(:mod:`core.model_meta`) and its preprocessing (:mod:`core.preprocess`). See
docs/ARCHITECTURE.md for the layers above it.
"""
