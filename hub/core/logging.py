"""structlog set-up: JSON or console lines, with redaction as a second guard for secrets.

The first guard is that code never logs a secret. This one drops the values of fields named
like secrets and masks anything in any string that looks like a bearer token, an API token,
a webhook secret or a JWT, in our log lines and in those of the libraries we use.
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|passphrase|token|authorization|cookie|apikey|credentials?|"
    r"privatekey|datakey|masterkey|masterkeys)$"
)
_SECRET_VALUE = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    r"|\bhub_[0-9A-Za-z]{30}_[0-9A-Za-z]{6}\b"
    r"|\bwhsec_[A-Za-z0-9+/=]+"
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)


def _is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    return bool(_SECRET_KEY.search(key.lower().replace("_", "").replace("-", "")))


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if key in {"exc_info", "stack_info"}:
            continue
        event_dict[key] = REDACTED if _is_secret_key(key) else redact_value(event_dict[key])
    return event_dict


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI twin of the message
    return event_dict


def _redact_rendered(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Tracebacks are rendered into `exception` late; mask what they may carry too.
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = _SECRET_VALUE.sub(REDACTED, event_dict["exception"])
    return event_dict


def _plain_redacted_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """The console format's tracebacks: plain, and masked like the JSON format's. structlog
    would otherwise render them with rich, which prints every frame's local variables: an
    unwrapped data key, a secret being sealed, a page of PHI."""
    rendered = io.StringIO()
    structlog.dev.plain_traceback(rendered, exc_info)
    sio.write(_SECRET_VALUE.sub(REDACTED, rendered.getvalue()))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and the standard library (uvicorn, arq, sqlalchemy) through one pipeline."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
        redact,
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_plain_redacted_traceback
        )
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt != "console":
        final.append(structlog.processors.format_exc_info)
    final += [_redact_rendered, renderer]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=final,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def bind_context(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
