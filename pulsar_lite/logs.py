"""Logging: every line about a job carries its manager and job id; text or one JSON object per line.

The engine, the managers and the staging phases run each job's work inside ``job_context(manager,
job_id)``; the log record factory copies those onto every record created meanwhile (``record.manager``,
``record.job_id``), whichever module logs it. Text lines then end with ``[manager/job_id]`` unless they
name the job already; ``log_format: json`` writes ``{"time", "level", "logger", "message", "manager",
"job_id", "exception"}`` per line, for Loki, ELK and the like.
"""
from __future__ import annotations

import contextvars
import json
import logging
import time
from contextlib import contextmanager
from functools import wraps

_JOB: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("pulsar_lite_job", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def job_context(manager: str, job_id: str):
    token = _JOB.set((manager, job_id))
    try:
        yield
    finally:
        _JOB.reset(token)


def for_job(method):
    """Run an engine method ``(self, manager, job_id, ...)`` in its job's logging context."""
    @wraps(method)
    def wrapper(self, manager, job_id, *args, **kwargs):
        token = _JOB.set((manager, job_id)) if isinstance(job_id, str) else None
        try:
            return method(self, manager, job_id, *args, **kwargs)
        finally:
            if token is not None:
                _JOB.reset(token)
    return wrapper


def _install_record_factory() -> None:
    """Every record created while a job's context is current gets ``manager`` and ``job_id`` (whatever handler
    sees it: ours, pytest's, a site's own)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "pulsar_lite", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        current = _JOB.get()
        if current is not None and getattr(record, "job_id", None) is None:
            record.manager, record.job_id = current
        return record

    factory.pulsar_lite = True
    logging.setLogRecordFactory(factory)


_install_record_factory()


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            return line
        manager = getattr(record, "manager", "?")
        message = record.getMessage()
        if job_id not in message:
            return f"{line} [{manager}/{job_id}]"
        if manager not in message:
            return f"{line} [manager {manager}]"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        if getattr(record, "job_id", None) is not None:
            entry["manager"] = getattr(record, "manager", None)
            entry["job_id"] = record.job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """The root logger's one handler (stderr), its format and the job filter; again: replaced."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "pulsar_lite", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.pulsar_lite = True
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
