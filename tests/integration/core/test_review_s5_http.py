"""A security review's findings on the HTTP surface: every answer carries the headers that
keep a browser from sniffing, framing or caching it (a token is shown once, in a response
nothing may keep), and an OPTIONS request is no 500."""

from __future__ import annotations

import httpx
import pytest

from tests.support import Member


class TestSecurityHeaders:
    async def test_every_answer_carries_them(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        answers = [
            await client.get("/api/v1/me"),  # 401, answered by the auth middleware
            await client.get("/api/v1/me", headers=admin.headers),
            await client.post(
                "/api/v1/tokens", headers=admin.headers, json={"name": "x", "scopes": ["keys:read"]}
            ),
            await client.get("/api/v1/nothing-here", headers=admin.headers),
            await client.get("/healthz"),
        ]
        assert [a.status_code for a in answers] == [401, 200, 201, 404, 200]
        for answer in answers:
            headers = answer.headers
            where = f"{answer.request.method} {answer.request.url.path} {answer.status_code}"
            assert headers.get("x-content-type-options") == "nosniff", where
            assert headers.get("x-frame-options") == "DENY", where
            assert headers.get("referrer-policy") == "no-referrer", where
        for answer in answers[:4]:
            assert answer.headers.get("cache-control") == "no-store", answer.request.url

    async def test_no_cors_is_granted(self, client: httpx.AsyncClient, admin: Member) -> None:
        response = await client.get(
            "/api/v1/me", headers={**admin.headers, "Origin": "https://evil.example"}
        )
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


class TestOptions:
    @pytest.mark.parametrize("path", ["/api/v1/keys", "/api/v1/tokens", "/api/v1/me"])
    async def test_an_options_request_is_no_500(
        self, client: httpx.AsyncClient, admin: Member, path: str
    ) -> None:
        for headers in ({}, admin.headers):
            response = await client.options(path, headers=headers)
            assert response.status_code < 500, response.text
            assert "access-control-allow-origin" not in response.headers
