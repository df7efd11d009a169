"""Log lines in JSON (TWIN_LOG_FORMAT=json): one object per line, the twin's loggers and
uvicorn's alike."""

from __future__ import annotations

import json
import logging
import logging.config

from twin_api.logs import JsonFormatter, log_config


def test_json_formatter_writes_one_object_per_line_with_iso_time() -> None:
    """Each record is one JSON line with an ISO 8601 UTC time, level, logger and message; an
    exception and hostile text (newlines, lone surrogates) stay inside the one line."""
    record = logging.LogRecord("twin.live.mqtt", logging.WARNING, __file__, 1,
                               "disconnected from %s\n\ud800", ("h:1",), None)  # fmt: skip
    try:
        raise OSError("boom")
    except OSError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "warning" and doc["logger"] == "twin.live.mqtt"
    assert doc["message"].startswith("disconnected from h:1")
    assert doc["time"].endswith("Z") and doc["time"][4] == "-"
    assert "OSError: boom" in doc["exception"]


def test_log_config_sends_twin_and_uvicorn_loggers_through_the_json_handler(capsys) -> None:
    """The dictConfig given to uvicorn routes twin.* and uvicorn.* records as JSON to stderr."""
    logging.config.dictConfig(log_config("json", "info"))
    try:
        logging.getLogger("twin.live.sync").warning("gap declared: %s", "mes")
        logging.getLogger("uvicorn.error").info("Started server process")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "root": {"handlers": [], "level": "WARNING"}})  # fmt: skip
        for name in ("twin", "twin_api", "uvicorn", "uvicorn.error", "uvicorn.access"):
            lg = logging.getLogger(name)
            lg.handlers.clear()
            lg.propagate = True
            lg.setLevel(logging.NOTSET)
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("twin.live.sync", "gap declared: mes"),
        ("uvicorn.error", "Started server process"),
    ]
