"""The CTM API client: token exchange, complaint download (streamed into the parser) and
casework upload, with the error mapping and retries of CTM-API.md section 4.

One client serves one environment. It refuses a base URL that is the other environment's
and credentials of the other environment, so a sandbox key can never reach production.
A key's secret is revealed only while the token request is built, and never logged.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from hub.ctm import layouts, modeled
from hub.ctm.credentials import CtmCredentials, CtmEnvironment, SecretSource, StaticSecret
from hub.ctm.download import ComplaintDownload, _check_csv_type, _check_not_html
from hub.ctm.errors import (
    ContractAccessDenied,
    CtmProtocolError,
    CtmUnavailable,
    EnvironmentMismatch,
    KeyRejected,
    RateLimited,
    TruncatedDownload,
    UploadOutcomeUnknown,
    UploadRefused,
)
from hub.ctm.parser import ComplaintParser
from hub.ctm.upload import ResolutionRow, write_upload_file
from hub.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)
# CMS's published hosts (CTM-API.md section 1): a client of one environment refuses the
# other's, whatever the configuration says.
KNOWN_URLS = {"sandbox": "https://hpmssandbox.cms.gov", "production": "https://hpms.cms.gov"}


# Failures before any byte of the request went out: CMS cannot have seen it, so even an
# upload (which must never reach CMS twice) is safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A gateway's answers for a request it passed on: CMS behind it may have done the work. (500,
# 503 and 429 are CMS's own: it did not.)
_GATEWAY_GAVE_UP = frozenset({502, 504})
# An upload so answered was refused whole: sending the same file again cannot help.
_FILE_REFUSED = frozenset({400, 422})
# The longest Retry-After taken as said; a longer one (or "inf") is read as this.
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter; Retry-After is honoured up to a limit."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def backoff(self, attempt: int, draw: Callable[[], float]) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt) * draw())


@dataclass(frozen=True)
class Rejection:
    complaint_id: str
    errors: list[str]


@dataclass(frozen=True)
class UploadResult:
    accepted: list[str]
    rejected: list[Rejection]


@dataclass
class _Token:
    value: str = field(repr=False)
    refresh_at: float
    cookie: str | None = field(repr=False, default=None)


def _host(url: str) -> str:
    """The host a URL reaches, as DNS reads it (case and the root's trailing dot folded)."""
    return (urlsplit(url.strip()).hostname or "").rstrip(".")


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{_host(url)}:{port}"


def _retry_after(response: httpx.Response) -> float | None:
    """CMS's Retry-After in seconds (delay-seconds or an HTTP-date, RFC 9110), at most a
    day: a job defers by it, and an absurd value must neither overflow nor stall it."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None  # unreadable: fall back to our own backoff
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _session_cookie(response: httpx.Response) -> str | None:
    """The cookies the token call set, as a Cookie header for the data calls of that token."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        try:
            jar.load(header)
        except CookieError:
            continue
    return "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items()) or None


class _Retry(Exception):
    def __init__(self, failure: Exception, delay: float | None = None) -> None:
        self.failure = failure
        self.delay = delay


class CtmClient:
    """Talks to one environment's CTM API. Use as an async context manager, or `aclose()`."""

    def __init__(
        self,
        environment: CtmEnvironment,
        *,
        base_url: str,
        other_environment_url: str | None = None,
        scope: str = modeled.DEFAULT_SCOPE,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        proxy: str | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 20,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # CMS's own host of the other environment on any scheme or port; a configured URL
        # (a proxy, a local simulator) by its origin, so two may share a host.
        forbidden = {_origin(other_environment_url)} if other_environment_url else set()
        if _host(base_url) == _host(KNOWN_URLS[environment.other.value]) or (
            _origin(base_url) in forbidden
        ):
            raise EnvironmentMismatch(
                f"{environment.value} client refused: {base_url} is the "
                f"{environment.other.value} CTM URL"
            )
        self.environment = environment
        self.base_url = base_url.rstrip("/")
        self.scope = scope
        self._retry = retry or RetryPolicy()
        self._sleep, self._clock, self._jitter = sleep, clock, jitter
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # The shared jar stores nothing: cookies belong to one key's token (kept on _Token),
        # and must never ride along with another tenant's request.
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            proxy=proxy,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            follow_redirects=False,
        )

    @classmethod
    def for_environment(
        cls, settings: Settings, environment: CtmEnvironment, **options: Any
    ) -> CtmClient:
        """The client for `environment` at its configured URL (`HUB_CTM_*_URL`)."""
        urls = {
            CtmEnvironment.SANDBOX: settings.ctm_sandbox_url,
            CtmEnvironment.PRODUCTION: settings.ctm_production_url,
        }
        return cls(
            environment,
            base_url=urls[environment],
            other_environment_url=urls[environment.other],
            **options,
        )

    async def __aenter__(self) -> CtmClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # Public calls -----------------------------------------------------------------------

    def download_complaints(
        self,
        credentials: CtmCredentials,
        contract: str,
        start: date,
        end: date,
        *,
        batch_size: int = 500,
    ) -> ComplaintDownload:
        """The contract's complaints between start and end, streamed into the parser.

        Iterate the result for batches of records; its `summary` is complete after the
        last batch. On `TruncatedDownload` (or any error) discard what it yielded.
        """
        self._check(credentials)
        if not layouts.is_contract_number(contract):
            raise ValueError(f"contract {contract!r} is not a contract number (e.g. H1234)")
        if start > end:
            raise ValueError("start date is after end date")
        allowed = credentials.contracts if credentials.contracts is not None else {contract}
        parser = ComplaintParser(allowed_contracts=allowed, batch_size=batch_size)
        return ComplaintDownload(self, credentials, contract, start, end, parser)

    async def upload_resolutions(
        self, credentials: CtmCredentials, rows: Sequence[ResolutionRow]
    ) -> UploadResult:
        """Send resolutions as one upload file; CMS answers which rows it accepted."""
        self._check(credentials)
        body = write_upload_file(rows)
        return await self.upload_file(credentials, body, {row.contract_id for row in rows})

    async def upload_file(
        self, credentials: CtmCredentials, body: bytes, contracts: Collection[str] = ()
    ) -> UploadResult:
        """Send an upload file as it is (its bytes unchanged; the caller has checked it);
        `contracts`, the ones it names, only label the request's log line."""
        self._check(credentials)
        contract = next(iter(contracts)) if len(contracts) == 1 else None
        files = {"file": (modeled.UPLOAD_FILE_NAME, body, modeled.DOWNLOAD_CONTENT_TYPE)}

        def build(headers: dict[str, str]) -> httpx.Request:
            return self._http.build_request(
                "POST", modeled.UPLOAD_PATH, files=files, headers=headers
            )

        response = await self._call(
            "upload", credentials, contract, build, stream=False, resend_safe=False
        )
        try:
            return _upload_result(response)
        except CtmProtocolError as error:  # CMS took the request (2xx): the file may be in
            raise UploadOutcomeUnknown(f"{error}; CMS may have taken the file") from None

    async def open_download(
        self, credentials: CtmCredentials, contract: str, start: date, end: date
    ) -> RawDownload:
        """The contract's download file as CMS sends it, unparsed, for passing on: CMS has
        answered with CSV (an error status, an HTML page or another type raises as for
        `download_complaints`) and its first bytes are read; `aclose()` it when done."""
        self._check(credentials)
        if not layouts.is_contract_number(contract):
            raise ValueError(f"contract {contract!r} is not a contract number (e.g. H1234)")
        if start > end:
            raise ValueError("start date is after end date")
        params = {
            modeled.DOWNLOAD_CONTRACT_PARAM: contract,
            modeled.DOWNLOAD_START_PARAM: start.strftime(modeled.DOWNLOAD_DATE_FORMAT),
            modeled.DOWNLOAD_END_PARAM: end.strftime(modeled.DOWNLOAD_DATE_FORMAT),
        }

        def build(headers: dict[str, str]) -> httpx.Request:
            return self._http.build_request(
                "GET", modeled.DOWNLOAD_PATH, params=params, headers=headers
            )

        response = await self._call("download", credentials, contract, build, stream=True)
        download = RawDownload(contract, response)
        try:
            _check_csv_type(response)
            await download.start()
        except BaseException:
            await download.aclose()
            raise
        return download

    async def token(self, credentials: CtmCredentials) -> str:
        """A valid access token for the key (cached; refreshed at 80 % of its lifetime)."""
        self._check(credentials)
        return (await self._token(credentials)).value

    # Tokens -----------------------------------------------------------------------------

    def _check(self, credentials: CtmCredentials) -> None:
        if credentials.environment is not self.environment:
            raise EnvironmentMismatch(
                f"key {credentials.key_id} is a {credentials.environment.value} key; "
                f"this client talks to {self.environment.value}"
            )

    async def _token(self, credentials: CtmCredentials, *, stale: str | None = None) -> _Token:
        cache_key = (credentials.key_id, credentials.version_id)
        cached = self._tokens.get(cache_key)
        if cached and cached.value != stale and self._clock() < cached.refresh_at:
            return cached
        # One refresh per key version: whoever waits on the lock finds the fresh token.
        async with self._locks.setdefault(cache_key, asyncio.Lock()):
            cached = self._tokens.get(cache_key)
            if cached and cached.value != stale and self._clock() < cached.refresh_at:
                return cached
            self._tokens.pop(cache_key, None)
            token: _Token = await self._with_retries(lambda: self._exchange(credentials))
            self._tokens[cache_key] = token
            return token

    async def _exchange(self, credentials: CtmCredentials) -> _Token:
        started = self._clock()
        request = self._http.build_request(
            "POST",
            modeled.TOKEN_PATH,
            json={
                modeled.TOKEN_USER_NAME: credentials.hpms_user_id,
                modeled.TOKEN_KEY_ID: credentials.key_id,
                modeled.TOKEN_KEY_SECRET: credentials.secret.reveal(),
                modeled.TOKEN_SCOPES: self.scope,
            },
        )
        response = await self._send(request, "token", credentials.key_id, None, stream=False)
        status = response.status_code
        if status in (401, 403):
            raise KeyRejected(credentials.key_id, f"CMS refused the key ({status} on token call)")
        self._raise_transient(response)
        if status != 200:
            raise CtmProtocolError(f"token call answered {status}")
        try:
            body = response.json()
            value = body[modeled.TOKEN_ACCESS_TOKEN]
            expires = float(body[modeled.TOKEN_EXPIRES])
        except (ValueError, KeyError, TypeError):
            raise CtmProtocolError("token call answered without accessToken/expires") from None
        if not isinstance(value, str) or not value or expires <= 0:
            raise CtmProtocolError("token call answered an empty token or no lifetime")
        refresh_at = started + expires * modeled.TOKEN_REFRESH_FRACTION
        return _Token(value=value, refresh_at=refresh_at, cookie=_session_cookie(response))

    # Requests ---------------------------------------------------------------------------

    async def _with_retries(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        attempt = 0
        while True:
            try:
                return await operation()
            except _Retry as retry:
                attempt += 1
                if attempt >= self._retry.attempts:
                    raise retry.failure from None
                delay = retry.delay
                if delay is None:
                    delay = self._retry.backoff(attempt - 1, self._jitter)
                await self._sleep(delay)

    def _raise_transient(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response)
            failure = RateLimited(retry_after)
            if retry_after is not None and retry_after > self._retry.max_retry_after:
                raise failure  # longer than we wait in a request: the job defers instead
            raise _Retry(failure, retry_after)
        if status >= 500:
            raise _Retry(CtmUnavailable(f"CMS answered {status}"))

    async def _send(
        self,
        request: httpx.Request,
        call: str,
        key_id: str,
        contract: str | None,
        *,
        stream: bool,
        resend_safe: bool = True,
    ) -> httpx.Response:
        """Send once. A transport failure is retried (`_Retry`), unless the request must not
        reach CMS twice (`resend_safe=False`, an upload) and may have gone out already."""
        started = self._clock()
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TransportError as error:  # timeouts, refused or cut connections
            log.warning(
                f"ctm {call} failed: {type(error).__name__}", key_id=key_id, contract=contract,
                status=None, duration_ms=round((self._clock() - started) * 1000),
            )  # fmt: skip
            if not resend_safe and not isinstance(error, _NOT_SENT):
                raise UploadOutcomeUnknown(
                    f"{call}: the connection failed after the file was sent "
                    f"({type(error).__name__}); CMS may have taken it"
                ) from None
            raise _Retry(CtmUnavailable(f"CMS unreachable ({type(error).__name__})")) from None
        log.info(
            f"ctm {call}", key_id=key_id, contract=contract, status=response.status_code,
            duration_ms=round((self._clock() - started) * 1000),
        )  # fmt: skip
        return response

    def _headers(self, credentials: CtmCredentials, token: _Token) -> dict[str, str]:
        headers = {
            modeled.CONSUMER_ID_HEADER: credentials.key_id,
            "Authorization": f"Bearer {token.value}",
        }
        if token.cookie:
            headers["Cookie"] = token.cookie
        return headers

    async def _call(
        self,
        call: str,
        credentials: CtmCredentials,
        contract: str | None,
        build: Callable[[dict[str, str]], httpx.Request],
        *,
        stream: bool,
        resend_safe: bool = True,
    ) -> httpx.Response:
        async def once() -> httpx.Response:
            token = await self._token(credentials)
            request = build(self._headers(credentials, token))
            response = await self._send(
                request, call, credentials.key_id, contract, stream=stream,
                resend_safe=resend_safe,
            )  # fmt: skip
            if response.status_code == 401:  # token invalid or expired: re-authenticate once
                await response.aclose()
                token = await self._token(credentials, stale=token.value)
                request = build(self._headers(credentials, token))
                response = await self._send(
                    request, call, credentials.key_id, contract, stream=stream,
                    resend_safe=resend_safe,
                )  # fmt: skip
                if response.status_code == 401:
                    await response.aclose()
                    raise ContractAccessDenied(
                        contract, "token refused twice (401)", key_id=credentials.key_id
                    )
            return await self._accept(
                response, call, contract, resend_safe=resend_safe, key_id=credentials.key_id
            )

        response: httpx.Response = await self._with_retries(once)
        return response

    async def _accept(
        self,
        response: httpx.Response,
        call: str,
        contract: str | None,
        *,
        resend_safe: bool,
        key_id: str,
    ) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        if not resend_safe and status in _FILE_REFUSED:
            said = await _said(response)
            await response.aclose()
            raise UploadRefused(status, said)
        await response.aclose()
        if status == 403:
            raise ContractAccessDenied(contract, key_id=key_id)
        if not resend_safe and status in _GATEWAY_GAVE_UP:
            raise UploadOutcomeUnknown(
                f"{call}: a gateway answered {status} (it gave up waiting, or lost CMS's "
                "answer); CMS may have taken the file"
            )
        self._raise_transient(response)
        raise CtmProtocolError(f"{call} answered {status}")


class RawDownload:
    """A download CMS is sending, unparsed: `content_type` as CMS said it, and `body()`, its
    bytes exactly as they arrive, never held whole. A cut (a failed connection, fewer bytes
    than CMS announced) raises `TruncatedDownload` from `body()` after the bytes that came."""

    def __init__(self, contract: str, response: httpx.Response) -> None:
        self.contract = contract
        self.bytes_read = 0
        self.is_complete = False
        self._response = response
        self._chunks = response.aiter_bytes()
        self._first = b""

    @property
    def content_type(self) -> str:
        """CMS's Content-Type header, as it sent it (checked to be CSV, or none)."""
        return str(self._response.headers.get("Content-Type", "")).strip()

    async def start(self) -> None:
        """Read the first bytes, and refuse an HTML page labelled as CSV."""
        while not self._first:
            chunk = await self._next()
            if chunk is None:
                return  # an empty body
            self._first = chunk
        _check_not_html(self._first)

    async def body(self) -> AsyncIterator[bytes]:
        if self._first:
            first, self._first = self._first, b""
            yield first
        while (chunk := await self._next()) is not None:
            if chunk:
                yield chunk
        declared = self._response.headers.get("Content-Length", "")
        arrived = self._response.num_bytes_downloaded
        if declared.isdigit() and int(declared) != arrived:
            raise TruncatedDownload(
                f"contract {self.contract}: {arrived} of {declared} bytes arrived"
            )
        self.is_complete = True

    async def _next(self) -> bytes | None:
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            return None
        except httpx.TransportError as error:
            raise TruncatedDownload(
                f"contract {self.contract}: the download stopped after {self.bytes_read} bytes "
                f"({type(error).__name__})"
            ) from None
        self.bytes_read += len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._response.aclose()


async def _said(response: httpx.Response) -> str:
    """What an error answer says, as one short line (its JSON `error`/`message`, or text)."""
    try:
        raw = (await response.aread())[:4000].decode("utf-8", errors="replace")
    except httpx.HTTPError:
        return ""
    try:
        body = json.loads(raw)
        if isinstance(body, dict):
            raw = str(body.get("error") or body.get("message") or raw)
    except ValueError:
        pass
    return " ".join(raw.split())[:300]


def _upload_result(response: httpx.Response) -> UploadResult:
    try:
        body = response.json()
        accepted = [str(item) for item in body[modeled.UPLOAD_ACCEPTED]]
        rejected = [
            Rejection(
                complaint_id=str(item[modeled.UPLOAD_REJECTED_ID]),
                errors=[str(error) for error in item[modeled.UPLOAD_REJECTED_ERRORS]],
            )
            for item in body[modeled.UPLOAD_REJECTED]
        ]
    except (ValueError, KeyError, TypeError):
        raise CtmProtocolError("upload answered without accepted/rejected lists") from None
    return UploadResult(accepted=accepted, rejected=rejected)


__all__ = [
    "ComplaintDownload",
    "CtmClient",
    "CtmCredentials",
    "CtmEnvironment",
    "RawDownload",
    "Rejection",
    "RetryPolicy",
    "SecretSource",
    "StaticSecret",
    "UploadResult",
]
