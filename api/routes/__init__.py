"""The HTTP API's routers, one per resource: PLC, inspections, reviews, health/metrics (the
QA UI's router is :mod:`api.ui.routes`)."""
