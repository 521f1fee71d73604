"""How the gateway's processes log: ``[logging]`` level and format (readable text, or one JSON object a line).

A JSON line holds ``timestamp`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``message``, then
every field the record was given with ``extra=`` (``log.info("...", extra={"carrier": "sim", "account_id": 3,
"message_id": "SM..."})``), and ``exc`` / ``stack`` for a traceback. Secrets are kept out by the filters that
already sit on the loggers that could carry them (gateway.api.middleware, gateway.store.db): they run before any
handler formats a record, so both formats show the same redacted values.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from gateway.settings import LoggingSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# what every LogRecord has (and what formatting adds): anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"timestamp": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
               .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_") and name not in out:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)  # default: what JSON cannot hold, as text


def formatter(settings: LoggingSettings) -> logging.Formatter:
    return JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(settings: LoggingSettings) -> None:
    """Root logging to stderr in the configured format and level; Python's warnings become records too, so
    that in JSON format every line on stderr is JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings))
    logging.basicConfig(level=settings.level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)
