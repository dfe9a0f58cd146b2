"""Great Expectations Data Docs views that compile each Jinja template once per process.

GX gives each Data Docs site section (expectations, validations, profiling) and the index page a view of its
own, and each view a Jinja environment of its own, so one site build compiles the same ~24 templates twice
over (51 compilations, ~60% of the build's CPU time). These views are GX's own with one shared in-memory
bytecode cache: a template is compiled once, the pages are the same. ``validate`` names them in the site
config it gives GX (``SITE_VIEWS``); GX imports this module only while it builds the site.
"""

from __future__ import annotations

from typing import Any

import jinja2
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates by Jinja's key; Jinja checks each against its source's checksum on load."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if (code := self._code.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _MemoryBytecodeCache()


class SharedJinjaPageView(DefaultJinjaPageView):
    """GX's page view (suites, validation results), compiling through the shared cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED


class SharedJinjaIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view, compiling through the shared cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED
