"""Tracebacks in the console log format (`hub demo`, HUB_LOG_FORMAT=console) show where an
error happened, never the values of the frames' variables, and mask token shapes as the
JSON format does."""

from __future__ import annotations

import base64
import os

import pytest
import structlog

from hub.core.logging import REDACTED, configure_logging


def rewrap_data_key(plain: bytes, secret: str, signing: str) -> None:
    """Fails holding an unwrapped key and a plaintext, as a re-wrap or a key's creation
    may; the error's message carries a token, as a library's may."""
    raise RuntimeError(f"KMS refused: header was Bearer {secret}, {signing}")


class TestConsoleTracebacks:
    def test_no_frame_variable_and_no_token_reaches_the_log(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        plain, secret = os.urandom(32), os.urandom(12).hex()
        signing = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        configure_logging("INFO", "console")
        try:
            rewrap_data_key(plain, secret, signing)
        except RuntimeError:
            structlog.get_logger("t").exception("rotation failed")
        err = capsys.readouterr().err
        assert "rewrap_data_key" in err, "the traceback itself is kept"
        assert "KMS refused" in err
        for leaked in (repr(plain)[2:20], plain.hex()[:16], secret, signing):
            assert leaked not in err
        assert REDACTED in err
