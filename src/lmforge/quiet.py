"""Keep the console about lmforge: drop third-party advertising and per-call chatter, keep warnings that matter.

    from lmforge.quiet import quiet_third_party
    quiet_third_party()  # once, at the start of a CLI command or flow

What goes: Lightning's "Tip: try litlogger" and "GPU/TPU available: False" lines (printed on every fit),
a deprecation inside Lightning's own pytree helper, transformers' per-load progress bars, and GX's note that
it made a temporary docs directory. Everything else, including every warning from lmforge's own code, stays.
"""

from __future__ import annotations

import logging
import warnings

_CHATTER = ("💡 Tip:", "GPU available:", "TPU available:", "HPU available:",
            "Created temporary directory")


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(prefix) for prefix in _CHATTER)


def quiet_third_party() -> None:
    chatter = _DropChatter()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "great_expectations.data_context.types.base"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropChatter) for f in logger.filters):
            logger.addFilter(chatter)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
