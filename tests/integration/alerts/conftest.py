"""Fixtures of the alert tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.alerts.email import SmtpMailer
from tests.integration.alerts.support import Sink, smtp_mailer


@pytest.fixture
def sink() -> Iterator[tuple[Sink, SmtpMailer]]:
    """A real SMTP sink, and a mailer that sends to it."""
    with smtp_mailer() as found:
        yield found
