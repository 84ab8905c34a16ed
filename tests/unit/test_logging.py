"""The log pipeline redacts secrets as a second guard."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from hub.auth.tokens import new_token
from hub.core.logging import REDACTED, configure_logging, redact_value


class TestRedaction:
    def test_secret_named_fields_are_dropped(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging("INFO", "json")
        structlog.get_logger("t").info(
            "hello",
            password="hunter2-hunter2",
            key_secret="S3CR3T-VALUE",
            Authorization="Basic abc",
            token_id="kept-id",
            nested={"api_key": "K-123", "fine": "visible"},
        )
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["password"] == REDACTED
        assert line["key_secret"] == REDACTED
        assert line["Authorization"] == REDACTED
        assert line["nested"] == {"api_key": REDACTED, "fine": "visible"}
        assert line["token_id"] == "kept-id"

    def test_token_shapes_are_masked_anywhere(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging("INFO", "json")
        hub_token = new_token()
        jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        structlog.get_logger("t").info(
            f"calling with Bearer abc.def-ghi and {hub_token}", detail=f"got {jwt}"
        )
        logging.getLogger("uvicorn.error").warning("header was Bearer zzz whsec_QUJDREVGRw==")
        err = capsys.readouterr().err
        for leaked in ("abc.def-ghi", hub_token, jwt, "zzz", "whsec_QUJDREVGRw=="):
            assert leaked not in err
        assert err.count(REDACTED) >= 4

    def test_redact_value_walks_lists(self) -> None:
        assert redact_value(["Bearer x1", {"secret": "y"}]) == [REDACTED, {"secret": REDACTED}]
