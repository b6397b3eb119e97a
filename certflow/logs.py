"""How a worker logs: Faust's format, or JSON lines for log pipelines."""

from __future__ import annotations

from typing import Any

from certflow.settings import Settings

#: ``CERTFLOW_LOG_LEVEL`` (Faust's names) → Python's.
LOG_LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


def logging_config(settings: Settings) -> dict[str, Any] | None:
    """JSON lines for log pipelines (``CERTFLOW_LOG_FORMAT=json``), else Faust's own."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": LOG_LEVELS[settings.log_level], "handlers": ["stdout"]},
    }
