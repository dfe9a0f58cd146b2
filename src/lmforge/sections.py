"""The base of every config section: frozen, unknown keys refused, hashable for cache keys and lineage."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def digest(self) -> str:
        """A stable hash of this section, used as a cache key and as lineage."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
