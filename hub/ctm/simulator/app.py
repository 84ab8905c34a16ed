"""The simulator's HTTP face: the modeled CTM API (token, download, upload) and a small
admin API under `/_sim` to register keys, rotate and deactivate them, inject faults, move
the clock and read what was uploaded. The admin API has no authentication: bind the
simulator to loopback."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

from litestar import Litestar, Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath
from litestar.response import Stream

from hub.ctm import layouts, modeled
from hub.ctm.errors import FileRejected
from hub.ctm.simulator import config
from hub.ctm.simulator.data import encode_file
from hub.ctm.simulator.state import RequestLog, Route, SimKey, SimState, SimulatorError, Upload
from hub.ctm.upload import read_upload_file

SESSION_COOKIE = "hpms_session"
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>HPMS</title></head>"
    b"<body><h1>Service temporarily unavailable</h1></body></html>"
)


class ConnectionCut(Exception):
    """Raised inside a download stream so the server drops the connection mid-body."""


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def _body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise SimulatorError("body: not JSON") from None


def _error_handler(_: Request[Any, Any, Any], error: SimulatorError) -> Response[Any]:
    return _json({"error": str(error)}, 400)


class _Api:
    """Handlers of the modeled CTM API over one SimState."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def log(self, route: Route, key: SimKey | None, status: int, **extra: Any) -> None:
        self.state.requests.append(RequestLog(route, key.key_id if key else None, status, **extra))

    async def fault(self, route: Route) -> Response[Any] | str | None:
        """Latency, then a drawn fault: an answer to send instead, 'cut', or None."""
        faults = self.state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        kind = self.state.draw_fault(route)
        if kind is None:
            return None
        if kind == "429":
            return _json(
                {"error": "Too Many Requests"}, 429, {"Retry-After": str(faults.retry_after)}
            )
        if kind in ("500", "502", "503", "504"):
            return _json({"error": "HPMS unavailable"}, int(kind))
        if kind == "403":
            return _json({"error": "Forbidden"}, 403)
        if kind in ("400", "422"):  # the whole request refused, as a file CMS cannot take
            return _json({"error": "The file does not match the plan upload layout"}, int(kind))
        if kind == "html":
            return Response(HTML_PAGE, status_code=200, media_type="text/html")
        if kind == "html_as_csv":  # an error page that claims to be the file
            return Response(HTML_PAGE, status_code=200, media_type="text/csv")
        if kind == "json":
            return _json({"message": "maintenance"}, 200)
        if kind == "hang":
            await asyncio.sleep(faults.hang_seconds)
            return None
        return kind  # "cut", "lost_answer": the handler acts on it itself

    async def token(self, request: Request[Any, Any, Any]) -> Response[Any]:
        injected = await self.fault("token")
        if isinstance(injected, Response):
            self.log("token", None, injected.status_code or 200)
            return injected
        try:
            body = config.mapping(await _body(request), "body")
        except SimulatorError as error:
            self.log("token", None, 400)
            return _json({"error": str(error)}, 400)
        key = self.state.keys.get(str(body.get(modeled.TOKEN_KEY_ID, "")))
        refused = (
            key is None
            or key.status != "active"
            or key.environment != self.state.environment
            or not secrets.compare_digest(
                str(body.get(modeled.TOKEN_KEY_SECRET, "")).encode(), key.secret.encode()
            )
            or body.get(modeled.TOKEN_USER_NAME) != key.hpms_user
            or body.get(modeled.TOKEN_SCOPES) != self.state.scope
        )
        if refused or key is None:
            self.log("token", key, 403)
            return _json({"error": "Forbidden"}, 403)
        token = self.state.issue_token(key)
        self.log("token", key, 200)
        response = _json(
            {modeled.TOKEN_ACCESS_TOKEN: token, modeled.TOKEN_EXPIRES: self.state.token_lifetime}
        )
        response.set_cookie(SESSION_COOKIE, secrets.token_hex(8), httponly=True)
        return response

    def authorise(self, request: Request[Any, Any, Any]) -> SimKey | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        key = self.state.key_for_token(token) if scheme.lower() == "bearer" else None
        if key is None or request.headers.get(modeled.CONSUMER_ID_HEADER) != key.key_id:
            return None
        return key

    async def download(self, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        key = self.authorise(request)
        had_cookie = SESSION_COOKIE in request.cookies
        if key is None:
            self.log("download", None, 401)
            return _json(modeled.INVALID_TOKEN_BODY, 401)
        params = request.query_params
        contract = params.get(modeled.DOWNLOAD_CONTRACT_PARAM, "")
        try:
            start = date.fromisoformat(params.get(modeled.DOWNLOAD_START_PARAM, ""))
            end = date.fromisoformat(params.get(modeled.DOWNLOAD_END_PARAM, ""))
        except ValueError:
            self.log("download", key, 400, contract=contract)
            return _json({"error": "startDate and endDate must be YYYY-MM-DD"}, 400)
        if not layouts.is_contract_number(contract):
            self.log("download", key, 400, contract=contract)
            return _json({"error": "contractId is not a contract number"}, 400)
        if contract not in key.contracts:
            self.log("download", key, 403, contract=contract)
            return _json({"error": "Forbidden"}, 403)
        injected = await self.fault("download")
        if isinstance(injected, Response):
            self.log("download", key, injected.status_code or 200, contract=contract)
            return injected
        self.log("download", key, 200, contract=contract, had_cookie=had_cookie)
        chunks = encode_file(self.state.complaints(contract, start, end), self.state.file_version)
        delay = self.state.faults.chunk_delay_ms / 1000
        body = _cut(chunks) if injected == "cut" else _stream(chunks, delay)
        return Stream(body, media_type="text/csv; charset=utf-8")

    async def upload(self, request: Request[Any, Any, Any]) -> Response[Any]:
        key = self.authorise(request)
        if key is None:
            self.log("upload", None, 401)
            return _json(modeled.INVALID_TOKEN_BODY, 401)
        injected = await self.fault("upload")
        if isinstance(injected, Response):
            self.log("upload", key, injected.status_code or 200)
            return injected
        form = await request.form()
        part = form.get(modeled.UPLOAD_FILE_FIELD)
        if not isinstance(part, UploadFile):
            self.log("upload", key, 400)
            return _json({"error": f"multipart part '{modeled.UPLOAD_FILE_FIELD}' missing"}, 400)
        try:
            lines = list(read_upload_file(await part.read()))
        except FileRejected as error:
            self.log("upload", key, 400)
            return _json({"error": str(error)}, 400)
        upload = self._judge(key, lines)
        self.state.uploads.append(upload)
        self.log("upload", key, 200)
        if injected == "lost_answer":  # taken; the caller gives up before the answer
            await asyncio.sleep(self.state.faults.hang_seconds)
        return _json(
            {
                modeled.UPLOAD_ACCEPTED: upload.accepted,
                modeled.UPLOAD_REJECTED: upload.rejected,
            }
        )

    def _judge(self, key: SimKey, lines: list[Any]) -> Upload:
        accepted: list[str] = []
        rejected: list[dict[str, Any]] = []
        known: dict[str, set[str]] = {}
        today = self.state.today()
        since = today - timedelta(days=self.state.history_days)
        for line in lines:
            errors = list(line.errors)
            contract = line.cells["CONTRACT_ID"].strip()
            complaint = line.cells["COMPLAINT_ID"].strip()
            if layouts.is_contract_number(contract) and contract not in key.contracts:
                errors.append(f"contract {contract} is not covered by this key")
            elif layouts.is_contract_number(contract):
                if contract not in known:
                    known[contract] = {
                        c.complaint_id for c in self.state.complaints(contract, since, today)
                    }
                if complaint and complaint not in known[contract]:
                    errors.append(f"complaint {complaint} is not a complaint of {contract}")
            if errors:
                rejected.append(
                    {modeled.UPLOAD_REJECTED_ID: complaint, modeled.UPLOAD_REJECTED_ERRORS: errors}
                )
                continue
            accepted.append(complaint)
            self.state.resolutions[(contract, complaint)] = {
                "RESOLUTION_DATE": line.cells["RESOLUTION_DATE"].strip(),
                "RESOLUTION_SUMMARY": line.cells["RESOLUTION_SUMMARY"],
                "CMS_PLAN_CASEWORK_NOTES": line.cells["CMS_PLAN_CASEWORK_NOTES"],
                "COMPLAINANT_SATISFIED": line.cells["COMPLAINANT_SATISFIED"].strip().upper(),
                "RESOLUTION_NOTIFICATION": line.cells["RESOLUTION_NOTIFICATION"],
            }
        return Upload(key.key_id, accepted, rejected, [line.cells for line in lines])


async def _stream(chunks: Iterator[bytes], delay: float = 0.0) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(delay)  # (0: let other requests run while a large file streams)


async def _cut(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    first = next(chunks, b"")
    yield first[: max(1, len(first) // 2)]
    raise ConnectionCut("simulated connection cut mid-download")


def _admin_routes(state: SimState) -> list[Any]:
    @get("/_sim/health", sync_to_thread=False)
    def health() -> dict[str, Any]:
        return {"ok": True, "environment": state.environment, "today": state.today().isoformat()}

    @get("/_sim/keys", sync_to_thread=False)
    def list_keys() -> list[dict[str, Any]]:
        return [key.public() for key in state.keys.values()]

    @post("/_sim/keys", status_code=201)
    async def create_key(request: Request[Any, Any, Any]) -> dict[str, Any]:
        key = config.add_key(state, await _body(request))
        return key.public() | {"secret": key.secret}

    @post("/_sim/keys/{key_id:str}/rotate", status_code=200, sync_to_thread=False)
    def rotate(key_id: FromPath[str]) -> dict[str, Any]:
        key = state.rotate(key_id)
        return key.public() | {"secret": key.secret, "replaces": key_id}

    @post("/_sim/keys/{key_id:str}/deactivate", status_code=200, sync_to_thread=False)
    def deactivate(key_id: FromPath[str]) -> dict[str, Any]:
        return state.deactivate(key_id).public()

    @post("/_sim/tokens/expire", status_code=200, sync_to_thread=False)
    def expire_tokens() -> dict[str, Any]:
        state.expire_tokens()
        return {"ok": True}

    @put("/_sim/faults")
    async def set_faults(request: Request[Any, Any, Any]) -> dict[str, Any]:
        state.faults = config.faults(await _body(request))
        return {"ok": True}

    @put("/_sim/settings")
    async def set_settings(request: Request[Any, Any, Any]) -> dict[str, Any]:
        config.apply_settings(state, await _body(request))
        return {"file_version": state.file_version.value, "token_lifetime": state.token_lifetime}

    @put("/_sim/contracts/{contract:str}")
    async def set_contract(
        contract: FromPath[str], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        if not layouts.is_contract_number(contract):
            raise SimulatorError(f"contract: {contract!r} is not a contract number")
        state.contracts[contract] = config.contract_plan(await _body(request), "body")
        return {"ok": True}

    @post("/_sim/advance", status_code=200)
    async def advance(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = config.mapping(await _body(request), "body", ("days",))
        days = body.get("days", 1)
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise SimulatorError("days: must be a whole number >= 0")
        return {"today": state.advance(days).isoformat()}

    @get("/_sim/uploads", sync_to_thread=False)
    def uploads() -> list[dict[str, Any]]:
        return [
            {"key_id": u.key_id, "accepted": u.accepted, "rejected": u.rejected, "rows": u.rows}
            for u in state.uploads
        ]

    @get("/_sim/requests", sync_to_thread=False)
    def requests() -> list[dict[str, Any]]:
        return [vars(entry) for entry in state.requests]

    return [health, list_keys, create_key, rotate, deactivate, expire_tokens, set_faults,
            set_settings, set_contract, advance, uploads, requests]  # fmt: skip


def create_simulator_app(state: SimState) -> Litestar:
    """The CMS stand-in over `state` (which tests may also change directly)."""
    api = _Api(state)

    @post(modeled.TOKEN_PATH, status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        return await api.token(request)

    @get(modeled.DOWNLOAD_PATH)
    async def download(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await api.download(request)

    @post(modeled.UPLOAD_PATH, status_code=200)
    async def upload(request: Request[Any, Any, Any]) -> Response[Any]:
        return await api.upload(request)

    return Litestar(
        route_handlers=[token, download, upload, *_admin_routes(state)],
        exception_handlers={SimulatorError: _error_handler},
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
