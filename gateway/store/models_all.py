"""Every table of the project, gathered for Alembic. Import models here when a package adds some."""

from __future__ import annotations

import gateway.store.models  # noqa: F401
import registry.models
import registry.toll_free  # noqa: F401
from registry.db import Base

metadata = Base.metadata
