"""Log set-up for the ``lernflow`` command: human text or one JSON object per line.

JSON lines (``--log-format json`` or ``LERNFLOW_LOG_FORMAT=json``) are for log collectors: every
record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, the ``flow`` and
``process`` the command runs (when it runs one), any ``extra={...}`` fields the call passed, and
``exc`` with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_context: dict[str, Any] = {}


def set_context(**fields: Any) -> None:
    """Fields added to every JSON record from now on (``flow``, ``process``)."""
    _context.update({k: v for k, v in fields.items() if v is not None})


class JsonFormatter(logging.Formatter):
    """One JSON object per record, keys in a stable order."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_context,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure(level: int, fmt: str = "text") -> None:
    """Install the root handler (stderr); replaces one installed before."""
    if fmt not in FORMATS:
        msg = f"log format {fmt!r} is not one of {', '.join(FORMATS)}"
        raise ValueError(msg)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
