"""Domain errors, and the one place that maps them (and framework errors) to HTTP answers."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

log = structlog.get_logger(__name__)


class DomainError(Exception):
    """Base of the errors services raise; `extra` holds machine-readable, non-secret detail."""

    status_code = HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, *, extra: Any = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    """The object does not exist for this caller (another tenant's object is 'not found' too)."""

    status_code = HTTP_404_NOT_FOUND

    def __init__(self, resource: str, ident: object) -> None:
        super().__init__(f"{resource} {ident} not found", extra={"resource": resource})
        self.resource = resource


class Conflict(DomainError):
    status_code = HTTP_409_CONFLICT

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        extra = [{"key": field, "message": detail}] if field else None
        super().__init__(detail, extra=extra)
        self.field = field


class Forbidden(DomainError):
    status_code = HTTP_403_FORBIDDEN


class Unauthenticated(DomainError):
    status_code = HTTP_401_UNAUTHORIZED


class Invalid(DomainError):
    """Input that breaks a rule; names the field and the rule."""

    status_code = HTTP_400_BAD_REQUEST

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", extra=[{"key": field, "message": reason}])
        self.field = field
        self.reason = reason


class Unavailable(DomainError):
    status_code = HTTP_503_SERVICE_UNAVAILABLE


WWW_AUTHENTICATE = 'Bearer realm="ctm-hub"'


def _body(status_code: int, detail: str, extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail}
    if extra is not None:
        body["extra"] = extra
    return body


def domain_error_handler(_: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if isinstance(error, Unauthenticated) else None
    return Response(
        _body(error.status_code, error.detail, error.extra),
        status_code=error.status_code,
        headers=headers,
    )


def http_error_handler(_: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    headers = dict(error.headers or {})
    if error.status_code == HTTP_401_UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    extra = error.extra if error.extra else None
    return Response(
        _body(error.status_code, error.detail, extra),
        status_code=error.status_code,
        headers=headers or None,
    )


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    # The exception text may carry values (SQL parameters, file contents): log its class and
    # where it happened, and answer with nothing from it.
    log.error(
        "unhandled error",
        error_class=type(error).__name__,
        path=request.url.path,
        method=request.method,
        exc_info=error,
    )
    return Response(
        _body(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error", None),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {
        DomainError: domain_error_handler,
        ValidationException: http_error_handler,
        NotAuthorizedException: http_error_handler,
        HTTPException: http_error_handler,
        HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
    }
