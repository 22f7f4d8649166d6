"""The QA web UI: static page (``static/``) and its endpoints (:mod:`api.ui.routes`)."""
