"""The service's log lines: text (uvicorn's look) or JSON, one object per line, for a log
collector (``TWIN_LOG_FORMAT=json``). The twin's own loggers (``twin.*``: broker connections,
store failures and recoveries, gaps, dead-letter bursts) and uvicorn's go the same way."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"[, "exception"]}``, time in ISO 8601 UTC."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def log_config(fmt: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: every logger that matters
    (root, twin.*, uvicorn.*) to stderr in ``fmt`` ("text" or "json") at ``level``."""
    formatter = (
        {"()": "twin_api.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "twin", "stream": "ext://sys.stderr"}
    loggers = {
        name: {"handlers": ["twin"], "level": level.upper(), "propagate": False}
        for name in ("twin", "twin_api", "uvicorn", "uvicorn.error", "uvicorn.access")
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"twin": formatter},
        "handlers": {"twin": handler},
        "loggers": loggers,
        "root": {"handlers": ["twin"], "level": level.upper()},
    }
