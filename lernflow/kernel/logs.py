"""Log set-up for the ``lernflow`` command: human text or one JSON object per line.

JSON lines (``--log-format json`` or ``LERNFLOW_LOG_FORMAT=json``) are for log collectors: every
record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, the ``flow`` and
``process`` the command runs (when it runs one), any ``extra={...}`` fields the call passed, and
``exc`` with the traceback when there is one.

The server clients' own lines come through here too (docs/runbook.md, "client logs"):
librdkafka's (``KafkaSettings.client_config`` hands it the ``lernflow.kafka.client`` logger)
one line per broker and error per :data:`CLIENT_LOG_INTERVAL_S`, with the count of repeats left
out; the Cassandra driver's connection errors once per host and error, at WARNING and without
the traceback. With ``-v`` (DEBUG) every line passes as the client wrote it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lernflow.config.settings import KAFKA_CLIENT_LOGGER

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_context: dict[str, Any] = {}
_format = ["text"]  # the format configure() installed (the last line of a command follows it)

#: librdkafka repeats a failed connect every ~50 ms: one line per broker and error this often
CLIENT_LOG_INTERVAL_S = 60.0
#: the Cassandra driver's loggers whose connection errors are shown once per host and error
CASSANDRA_LOGGERS = ("cassandra.cluster", "cassandra.pool", "cassandra.connection")
# what varies between two librdkafka lines about one broker and error: "(after 0ms in state
# CONNECT, 4 identical error(s) suppressed)", times, counts
_RD_VARYING = re.compile(
    r"\s*\((?:after|\d+ identical)(?:[^()]|\([^()]*\))*\)|\d+(?:\.\d+)?\s*ms\b"
)
_MAX_KEYS = 10_000  # a bound on what the filters remember


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


class ClientRepeats(logging.Filter):
    """librdkafka's lines: the first of each broker and error passes, the repeats within
    ``interval_s`` are counted, and the next one after it says how many were left out."""

    def __init__(self, interval_s: float = CLIENT_LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._shown: dict[str, tuple[float, int]] = {}  # key -> (shown at, repeats left out)

    @staticmethod
    def key(record: logging.LogRecord) -> str:
        """Facility and text without the client's name, times and counts (confluent-kafka logs
        ``"%s [%s] %s" % (facility, client name, text)``)."""
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 3:
            return f"{args[0]} {_RD_VARYING.sub('', str(args[2]))}"
        return _RD_VARYING.sub("", record.getMessage())

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = self.key(record), self._clock()
        with self._lock:
            shown_at, left_out = self._shown.get(key, (None, 0))
            if shown_at is not None and now - shown_at < self._interval:
                self._shown[key] = (shown_at, left_out + 1)
                return False
            if len(self._shown) >= _MAX_KEYS:
                self._shown.clear()
            self._shown[key] = (now, 0)
        if left_out and shown_at is not None:
            record.msg = (
                f"{record.getMessage()} ({left_out} more like it in the last "
                f"{now - shown_at:.0f} s not shown)"
            )
            record.args = None
        return True


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


class DriverOnce(logging.Filter):
    """The Cassandra driver's connection errors: once per logger, message, host and error, at
    WARNING, the exception on the same line instead of a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        error = "" if exc is None else f"{type(exc).__name__}: {_one_line(exc)}"
        key = f"{record.name}|{record.msg}|{record.args}|{error}"
        with self._lock:
            if key in self._seen:
                return False
            if len(self._seen) >= _MAX_KEYS:
                self._seen.clear()
            self._seen.add(key)
        record.msg = f"{record.getMessage()} {error}".rstrip()
        record.args = None
        record.exc_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_clients(on: bool) -> None:
    """Install the client filters (``on``), replacing ones installed before."""
    targets = [(KAFKA_CLIENT_LOGGER, ClientRepeats), *((n, DriverOnce) for n in CASSANDRA_LOGGERS)]
    for name, kind in targets:
        target = logging.getLogger(name)
        for old in [f for f in target.filters if isinstance(f, ClientRepeats | DriverOnce)]:
            target.removeFilter(old)
        if on:
            target.addFilter(kind())


def configure(level: int, fmt: str = "text") -> None:
    """Install the root handler (stderr); replaces one installed before. Below DEBUG the
    clients' repeated lines are cut (:class:`ClientRepeats`, :class:`DriverOnce`)."""
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
    _format[0] = fmt
    _quiet_clients(level > logging.DEBUG)


def last_line(message: str, **fields: Any) -> str:
    """A command's closing line in the configured format: the message itself (text), or one
    JSON record at level ERROR with ``fields`` (json), so a log collector sees it too."""
    if _format[0] != "json":
        return message
    record = logging.LogRecord("lernflow", logging.ERROR, "", 0, message, None, None)
    record.__dict__.update(fields)
    return JsonFormatter().format(record)
