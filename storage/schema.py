"""Every table of the inspection log on one metadata: the inspection log (``storage.orm``),
API keys and audit log (``storage.access``), shadow results (``storage.shadow``),
recipe promotions (``storage.promotions``) and the review queue (``storage.review_queue``).

Import :data:`metadata` where the whole schema matters (the Alembic environment, the
schema-vs-migrations check); the modules themselves import only ``storage.orm``'s ``Base``,
so no storage module has to import another one upwards just to register its tables.
"""

from __future__ import annotations

from storage import access, promotions, review_queue, shadow
from storage.orm import Base

metadata = Base.metadata

__all__ = ["access", "metadata", "promotions", "review_queue", "shadow"]
