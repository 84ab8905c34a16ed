"""Errors the framework answers say what was wrong too, and the schema documents them."""

from __future__ import annotations

import httpx
import pytest

from tests.support import Member


class TestFrameworkErrors:
    async def test_a_malformed_path_id_names_the_path_and_why(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        response = await client.get("/api/v1/keys/not-a-uuid", headers=admin.headers)
        assert response.status_code == 404
        assert response.json() == {
            "status_code": 404,
            "detail": "No such path: /api/v1/keys/not-a-uuid "
            "(badly formed hexadecimal UUID string)",
        }

    async def test_an_unknown_path_is_named(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/nothing-here")
        assert response.status_code == 404
        assert response.json()["detail"] == "No such path: /api/v1/nothing-here"

    @pytest.mark.parametrize(
        ("query", "name"),
        [("/api/v1/alerts?state=bogus", "state"), ("/api/v1/events?type=" + "x" * 101, "type")],
    )
    async def test_a_bad_query_parameter_is_named_as_sent(
        self, client: httpx.AsyncClient, admin: Member, query: str, name: str
    ) -> None:
        response = await client.get(query, headers=admin.headers)
        assert response.status_code == 400
        [problem] = response.json()["extra"]
        assert (problem["key"], problem["source"]) == (name, "query")


class TestSchema:
    async def test_error_answers_are_documented_with_their_body(
        self, client: httpx.AsyncClient
    ) -> None:
        schema = (await client.get("/schema/openapi.json")).json()
        responses = schema["paths"]["/api/v1/keys/{key_id}"]["get"]["responses"]
        assert sorted(responses) == ["200", "400", "401", "403", "404"]
        assert responses["404"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        body = schema["components"]["schemas"]["ErrorBody"]
        assert sorted(body["required"]) == ["detail", "status_code"]
        assert sorted(schema["paths"]["/api/v1/me"]["get"]["responses"]) == ["200", "401"]

    async def test_a_body_that_refuses_unknown_fields_says_so(
        self, client: httpx.AsyncClient
    ) -> None:
        schema = (await client.get("/schema/openapi.json")).json()
        assert schema["components"]["schemas"]["KeyCreate"]["additionalProperties"] is False
        assert "additionalProperties" not in schema["components"]["schemas"]["KeyView"]
