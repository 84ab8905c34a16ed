"""Live verification of a key: one token exchange against its environment's CTM API."""

from __future__ import annotations

import httpx

from hub.ctm.client import CtmClient, CtmCredentials, CtmEnvironment, RetryPolicy
from hub.settings import Settings

# A person is waiting on the answer: try twice, briefly, then say CMS did not answer.
VERIFY_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, max_retry_after=2.0)
VERIFY_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class CtmVerifier:
    """Verifies keys with one CTM client per environment, built on first use."""

    def __init__(self, settings: Settings, **client_options: object) -> None:
        self.settings = settings
        self.client_options = client_options
        self._clients: dict[CtmEnvironment, CtmClient] = {}

    def client(self, environment: CtmEnvironment) -> CtmClient:
        if environment not in self._clients:
            options = {"retry": VERIFY_RETRY, "timeout": VERIFY_TIMEOUT, **self.client_options}
            self._clients[environment] = CtmClient.for_environment(
                self.settings, environment, **options
            )
        return self._clients[environment]

    async def verify(self, credentials: CtmCredentials) -> None:
        await self.client(credentials.environment).token(credentials)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
