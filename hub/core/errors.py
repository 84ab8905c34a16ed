"""Domain errors, and the one place that maps them (and framework errors) to HTTP answers
and documents those answers in the OpenAPI schema."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi import ResponseSpec
from litestar.params import ParameterKwarg
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_502_BAD_GATEWAY,
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

    def __init__(self, resource: str, ident: object, *, detail: str | None = None) -> None:
        """`detail`: the sentence to answer instead of "<resource> <ident> not found"."""
        super().__init__(detail or f"{resource} {ident} not found", extra={"resource": resource})
        self.resource = resource


class Conflict(DomainError):
    status_code = HTTP_409_CONFLICT

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        # As `Invalid`: the detail may lead with "field: ", the extra's message does not.
        message = detail.removeprefix(f"{field}: ") if field else detail
        extra = [{"key": field, "message": message}] if field else None
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


E = TypeVar("E", bound=enum.StrEnum)


def choice(field: str, raw: str | None, choices: type[E]) -> E | None:
    """An optional enum value given as text (a query parameter), any case; None when blank,
    a 400 naming `field` and every allowed value when it is none of them."""
    if raw is None or not raw.strip():
        return None
    try:
        return choices(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise Invalid(field, f"must be one of {allowed}") from None


class Unavailable(DomainError):
    status_code = HTTP_503_SERVICE_UNAVAILABLE


class TooBusy(DomainError):
    """Too many requests at once (ours, or CMS's rate limit): retry after `retry_after` s."""

    status_code = HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class UpstreamFailed(DomainError):
    """A service the hub passes a call on to (CMS) refused it or answered nonsense."""

    status_code = HTTP_502_BAD_GATEWAY


WWW_AUTHENTICATE = 'Bearer realm="ctm-hub"'
ROUTER_NOT_FOUND = NotFoundException().detail  # what Litestar's router says for an unknown path


def _body(status_code: int, detail: str, extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail}
    if extra is not None:
        body["extra"] = extra
    return body


def domain_error_handler(_: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if isinstance(error, Unauthenticated) else None
    if isinstance(error, TooBusy):
        headers = {"Retry-After": str(error.retry_after)}
    return Response(
        _body(error.status_code, error.detail, error.extra),
        status_code=error.status_code,
        headers=headers,
    )


def _wire_name(request: Request[Any, Any, Any], problem: dict[str, Any]) -> dict[str, Any]:
    """Name a query parameter or header as the caller sent it: Litestar names it by the
    handler's argument (`alert_state` for `?state=`)."""
    if problem.get("source") not in {"query", "header", "cookie"}:
        return problem
    parameter = request.route_handler.parsed_fn_signature.parameters.get(problem.get("key", ""))
    kwarg = parameter.kwarg_definition if parameter is not None else None
    if isinstance(kwarg, ParameterKwarg) and kwarg.name:
        return {**problem, "key": kwarg.name}
    return problem


def _detail(request: Request[Any, Any, Any], error: HTTPException) -> str:
    if isinstance(error, NotFoundException) and error.detail == ROUTER_NOT_FOUND:
        # The router's own 404 says nothing; say which path, and what in it did not parse.
        cause = error.__cause__
        unparsed = isinstance(cause, ValueError) and not isinstance(cause, HTTPException)
        return f"No such path: {request.url.path}" + (f" ({cause})" if unparsed else "")
    return error.detail


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    headers = dict(error.headers or {})
    if error.status_code == HTTP_401_UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    extra = error.extra if error.extra else None
    if isinstance(error, ValidationException) and isinstance(extra, list):
        extra = [_wire_name(request, p) if isinstance(p, dict) else p for p in extra]
    return Response(
        _body(error.status_code, _detail(request, error), extra),
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


class ErrorBody(msgspec.Struct):
    """Every error answer (Litestar's shape). `extra`, when present, names the fields at
    fault (`[{"key", "message"}]`) or holds other machine-readable detail."""

    status_code: int
    detail: str
    extra: list[dict[str, Any]] | dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


_MEANINGS = {
    HTTP_400_BAD_REQUEST: "The request breaks a rule; `detail` and `extra` name the field",
    HTTP_401_UNAUTHORIZED: "No bearer token, or one that is invalid, expired or revoked",
    HTTP_403_FORBIDDEN: "The token lacks the scope, or the caller the role, this call needs",
    HTTP_404_NOT_FOUND: "No such object in the caller's tenant",
    HTTP_409_CONFLICT: "The object's state does not allow this; `detail` says why",
    HTTP_429_TOO_MANY_REQUESTS: "Too many calls at once; retry after `Retry-After` seconds",
    HTTP_502_BAD_GATEWAY: "CMS refused the call passed on to it, or answered nonsense",
    HTTP_503_SERVICE_UNAVAILABLE: "A service this call needs did not answer; retry later",
}


def documented(*status_codes: int) -> dict[int, ResponseSpec]:
    """`responses=` for a route handler: the error answers it may give, for the schema."""
    return {
        code: ResponseSpec(ErrorBody, generate_examples=False, description=_MEANINGS[code])
        for code in status_codes
    }


def exception_handlers() -> ExceptionHandlersMap:
    return {
        DomainError: domain_error_handler,
        ValidationException: http_error_handler,
        NotAuthorizedException: http_error_handler,
        HTTPException: http_error_handler,
        HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
    }
