"""Keep the console readable: Lightning's messages once, through our handlers, without its advertising or the
deprecation noise it triggers inside torch."""

from __future__ import annotations

import logging
import warnings

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class _DropTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing ..." lines (product suggestions, not run information)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def route_lightning_logs() -> None:
    """Send Lightning's log records through the root handlers (console, train.log) exactly once.

    Lightning adds its own console handler when it is imported before logging is configured, so every line would
    appear twice. Call after Lightning is imported; idempotent.
    """
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # A logger's filters see only the records made on that logger: the tips come from the rank-zero helpers'.
    tip_loggers = [logging.getLogger(f"{name}.utilities.rank_zero") for name in _LIGHTNING_LOGGERS[1:]]
    try:
        from lightning_utilities.core import rank_zero

        tip_loggers.append(rank_zero.log)
    except ImportError:  # pragma: no cover - ships with Lightning
        pass
    for logger in tip_loggers:
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
    # Lightning 2.6 still builds torch's deprecated LeafSpec on every batch it moves; the warning is about
    # Lightning's code, and nothing a user of recipezoo can act on.
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
