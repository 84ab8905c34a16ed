"""API token format: recognisable, checksummed, stored only as a hash."""

from __future__ import annotations

from hub.auth import tokens


class TestTokenFormat:
    def test_new_token_has_prefix_body_and_checksum(self) -> None:
        token = tokens.new_token()
        prefix, body, checksum = token.split("_")
        assert prefix == "hub"
        assert len(body) == 30
        assert len(checksum) == 6
        assert tokens.is_well_formed(token)

    def test_changed_character_fails_the_checksum(self) -> None:
        token = tokens.new_token()
        flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        assert not tokens.is_well_formed(flipped)

    def test_tokens_differ_and_hash_is_stable(self) -> None:
        made = {tokens.new_token() for _ in range(1000)}
        assert len(made) == 1000
        token = next(iter(made))
        assert tokens.token_hash(token) == tokens.token_hash(token)
        assert token not in tokens.token_hash(token)

    def test_garbage_is_not_well_formed(self) -> None:
        for raw in ["", "hub_", "Bearer x", "hub_" + "a" * 30 + "_" + "b" * 5, "x" * 41]:
            assert not tokens.is_well_formed(raw)


class TestPasswords:
    def test_hash_verifies_only_the_right_password(self) -> None:
        hashed = tokens.hash_password("a long enough password")
        assert tokens.verify_password(hashed, "a long enough password")
        assert not tokens.verify_password(hashed, "another password")
        assert not tokens.verify_password(None, "a long enough password")
        assert not tokens.verify_password("not-a-hash", "x")
