"""/api/v1/keys/{id}/tokens and /api/v1/gateway: key-bound tokens, and the CTM API passed
through to CMS for a key's RP and designees, who never see the key's secret."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.auth.guards import ANY_SCOPE, scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.auth.schemas import TokenCreated, TokenView
from hub.core.db import utcnow
from hub.core.errors import documented
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.gateway import passthrough, service
from hub.gateway.schemas import (
    KeyTokenCreate,
    Rejected,
    TokenAnswer,
    TokenRequest,
    UploadAnswer,
)
from hub.keys import service as keys

GATEWAY = scope(Scope.CTM_GATEWAY)
ConsumerId = Annotated[
    str | None,
    HeaderParameter(
        name=modeled.CONSUMER_ID_HEADER,
        max_length=200,
        description="The CMS key ID of the key to act with (any key of this tenant in this "
        "environment); without it, the key that serves the contract",
    ),
]


def _clients(state: State) -> Mapping[CtmEnvironment, CtmClient]:
    """The web process's CTM clients (the app's lifespan opens them; tests hand theirs in)."""
    clients: Mapping[CtmEnvironment, CtmClient] = state.get("ctm_clients") or {}
    return clients


class KeyTokenController(Controller):
    path = "/keys"
    tags = ["keys", "gateway"]

    @post(
        "/{key_id:uuid}/tokens",
        opt=GATEWAY,
        status_code=201,
        responses=documented(400, 401, 403, 404, 409),
    )
    async def issue_key_token(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
        data: JSONBody[KeyTokenCreate],
    ) -> TokenCreated:
        """A token that acts with this key through the CTM gateway and nothing else (scope
        `ctm:gateway`), for the key's RP or a member it designates; `expires_in` as for
        `POST /tokens`, "12h" when omitted, ending no later than the calling token. It is
        revoked with the key, or when its holder is taken off the designees."""
        issued = await service.issue_key_token(
            db_session, principal, key_id=key_id, name=data.name, expires_in=data.expires_in
        )
        return TokenCreated(token=TokenView.of(issued.token), secret=issued.plaintext)


class GatewayController(Controller):
    path = "/gateway"
    tags = ["gateway"]

    @get(
        f"/{{environment:str}}{modeled.DOWNLOAD_PATH}",
        opt=GATEWAY,
        media_type=modeled.DOWNLOAD_CONTENT_TYPE,
        responses=documented(400, 401, 403, 404, 409, 429, 502, 503),
    )
    async def download(
        self,
        state: State,
        principal: NamedDependency[Principal],
        environment: FromPath[str],
        contract: Annotated[
            str | None, QueryParameter(name=modeled.DOWNLOAD_CONTRACT_PARAM, max_length=20)
        ] = None,
        start: Annotated[
            str | None, QueryParameter(name=modeled.DOWNLOAD_START_PARAM, max_length=20)
        ] = None,
        end: Annotated[
            str | None, QueryParameter(name=modeled.DOWNLOAD_END_PARAM, max_length=20)
        ] = None,
        consumer_id: ConsumerId = None,
    ) -> Stream:
        """CMS's complaint download (`contractId`, `startDate`, `endDate`, all required),
        passed on as CMS sends it (`text/csv`), for the key's RP and designees. Audited,
        with a `phi.read` entry committed before the first byte."""
        passed = await passthrough.open_download(
            state.db, _clients(state), state.redis, principal, environment=environment,
            consumer_id=consumer_id, contract=contract, start=start, end=end,
        )  # fmt: skip
        # The background task finishes a download whose body was never asked for (it is a
        # no-op once the body has been read).
        return Stream(
            passed.body(), media_type=passed.media_type, background=BackgroundTask(passed.finish)
        )

    @post(
        f"/{{environment:str}}{modeled.TOKEN_PATH}",
        opt={**scope(ANY_SCOPE), "exclude_from_auth": True},
        security=[],
        status_code=200,
        responses=documented(400, 403, 404),
    )
    async def token(
        self,
        db_session: NamedDependency[AsyncSession],
        environment: FromPath[str],
        data: JSONBody[TokenRequest],
    ) -> TokenAnswer:
        """CMS's token call, for a CTM client pointed at the gateway: `keySecret` is a hub
        token (key-bound, or a designee's holding `ctm:gateway`), `keyId` the CMS key ID of
        a key it may act with; the answer's `accessToken` is that same hub token (never a
        CMS token, never the key's secret), `expires` its remaining seconds (1800 for one
        that never expires). No bearer token is sent: the body is the credential, as at CMS.
        A refusal is a 403, as CMS answers; a key ID of no key of the token's tenant, 404."""
        exchanged = await service.exchange(
            db_session, environment=keys.parse_environment(environment), key_id=data.key_id,
            secret=data.key_secret, now=utcnow(),
        )  # fmt: skip
        await audit.record(
            db_session,
            actor=audit.Actor.of_principal(exchanged.principal),
            action="ctm.gateway.token",
            tenant_id=exchanged.principal.tenant,
            target_type="api_key",
            target_id=exchanged.key_id,
            details={"environment": environment.lower()},
        )
        return TokenAnswer(access_token=data.key_secret.strip(), expires=exchanged.expires_in)

    @post(
        f"/{{environment:str}}{modeled.UPLOAD_PATH}",
        opt=GATEWAY,
        status_code=200,
        responses=documented(400, 401, 403, 404, 409, 429, 502, 503),
    )
    async def upload(
        self,
        state: State,
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        environment: FromPath[str],
        consumer_id: ConsumerId = None,
    ) -> UploadAnswer:
        """A casework upload (`multipart/form-data`, one part `file` in the plan upload
        layout), checked as CMS would (a bad file or row is a 400 naming the row), then sent
        to CMS as it came; CMS's answer `{"accepted", "rejected"}`. Outside the hub's own
        resolution tracking: prefer `POST /complaints/{id}/resolutions`."""

        async def file() -> bytes | None:
            part = (await request.form()).get(modeled.UPLOAD_FILE_FIELD)
            return await part.read() if isinstance(part, UploadFile) else None

        result = await passthrough.upload(
            state.db, _clients(state), state.redis, principal, environment=environment,
            consumer_id=consumer_id, data=file,
        )  # fmt: skip
        return UploadAnswer(
            accepted=result.accepted,
            rejected=[Rejected(r.complaint_id, r.errors) for r in result.rejected],
        )
