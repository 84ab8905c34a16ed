"""Signing agrees with the reference `standardwebhooks` library; settings parse."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hub.settings import SettingsError, load_settings
from hub.webhooks import signing
from hub.webhooks.payloads import public_data
from hub.webhooks.sender import parse_retry_after


class TestSecrets:
    def test_secret_is_whsec_and_at_least_24_random_bytes(self) -> None:
        secret = signing.new_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
        assert signing.new_secret() != secret


class TestSignature:
    def test_reference_library_verifies_our_signature(self) -> None:
        secret = signing.new_secret()
        body, now = b'{"type":"webhook.test"}', int(time.time())
        header = signing.signature_header(
            [signing.secret_key(secret)], message_id="msg_1", timestamp=now, body=body
        )
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(now),
            "webhook-signature": header,
        }
        assert Webhook(secret).verify(body, headers) == {"type": "webhook.test"}

    def test_two_keys_give_two_signatures_each_verifiable(self) -> None:
        old, new = signing.new_secret(), signing.new_secret()
        body, now = b"{}", int(time.time())
        header = signing.signature_header(
            [signing.secret_key(new), signing.secret_key(old)],
            message_id="msg_2",
            timestamp=now,
            body=body,
        )
        assert len(header.split(" ")) == 2
        headers = {
            "webhook-id": "msg_2",
            "webhook-timestamp": str(now),
            "webhook-signature": header,
        }
        Webhook(old).verify(body, headers)
        Webhook(new).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(signing.new_secret()).verify(body, headers)


class TestPayloadFilter:
    def test_phi_is_removed_at_any_depth(self) -> None:
        data = {"id": 1, "phi": {"x": 1}, "items": [{"mbi": "A", "ok": True}], "Narrative": "n"}
        assert public_data(data, include_phi=False) == {"id": 1, "items": [{"ok": True}]}
        assert public_data(data, include_phi=True) == data


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"), [("120", 120.0), ("0", 0.0), ("999999", 86400.0), ("soon", None)]
    )
    def test_delta_seconds(self, value: str, seconds: float | None) -> None:
        assert parse_retry_after(value) == seconds

    def test_http_date(self) -> None:
        from email.utils import formatdate

        parsed = parse_retry_after(formatdate(time.time() + 60, usegmt=True))
        assert parsed is not None
        assert 55 <= parsed <= 61


class TestSettings:
    def test_retry_schedule_defaults_to_the_issue_schedule(self, tmp_path: object) -> None:
        settings = load_settings()
        assert settings.webhook_retry_delays == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
        assert settings.webhook_allow_private_networks is False
        assert settings.webhook_http_hosts == frozenset()

    def test_bad_schedule_names_the_variable(self) -> None:
        with pytest.raises(SettingsError, match="HUB_WEBHOOK_RETRY_SCHEDULE"):
            load_settings(webhook_retry_schedule="0,soon")

    def test_http_hosts_are_a_set(self) -> None:
        settings = load_settings(webhook_allow_http_hosts=" Hooks.Local , 127.0.0.1,")
        assert settings.webhook_http_hosts == frozenset({"hooks.local", "127.0.0.1"})
