"""The chaos tests' fixtures: `live`, a committing Database whose jobs go to the test Redis
(as the webhook worker tests use it)."""

from tests.integration.webhooks.test_worker import live

__all__ = ["live"]
