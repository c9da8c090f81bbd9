"""Logging to stdout: plain text by default, one JSON object per line with LOG_FORMAT=json.

Log lines carry ids and outcomes, never a patient's phone or name (mask with connector.core.phones).
"""

from __future__ import annotations

import json
import logging
import sys

from connector.config import Settings


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"at": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", {})
        return text + ("" if not fields else " " + " ".join(f"{k}={v}" for k, v in fields.items()))


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger("connector")
    if getattr(root, "_configured", False):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonFormatter() if settings.log_json else
                         _TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    root._configured = True  # type: ignore[attr-defined]
