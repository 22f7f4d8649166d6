"""HTTP API concern: FastAPI app (PLC verdicts, ad-hoc inspection, defect log, metrics)."""
