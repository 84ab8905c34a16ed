"""Sealing with a tenant's cipher: round trip, owner binding, tamper detection, nonces."""

from __future__ import annotations

import os
from uuid import UUID

import pytest
from sqlalchemy.dialects import sqlite

from hub.core.crypto import (
    CryptoError,
    MalformedSealedValue,
    Sealed,
    SealedColumn,
    SealedValueRejected,
    TenantCipher,
    TenantKeyMissing,
    UnknownFormatVersion,
)
from hub.core.ids import uuid7
from tests.forks import made_in_a_child

FIELD = "api_key_versions.secret"
SECRET = "canary-7f3a-not-for-logs"


def make_cipher(tenant: UUID | None = None, *, versions: tuple[int, ...] = (1,)) -> TenantCipher:
    return TenantCipher(
        tenant or uuid7(),
        active_version=versions[-1],
        data_keys={v: os.urandom(32) for v in versions},
        index_key=os.urandom(32),
    )


@pytest.fixture
def cipher() -> TenantCipher:
    return make_cipher()


class TestRoundTrip:
    def test_open_returns_what_was_sealed(self, cipher: TenantCipher) -> None:
        row = uuid7()
        sealed = cipher.seal(SECRET, field=FIELD, row=row)
        assert cipher.open(sealed, field=FIELD, row=row) == SECRET

    def test_unicode_and_empty_text_round_trip(self, cipher: TenantCipher) -> None:
        row = uuid7()
        for text in ("", "Zoë — 患者 🩺", "x" * 10_000):
            assert (
                cipher.open(cipher.seal(text, field=FIELD, row=row), field=FIELD, row=row) == text
            )

    def test_token_describes_itself(self, cipher: TenantCipher) -> None:
        sealed = cipher.seal(SECRET, field=FIELD, row=uuid7())
        assert sealed.format_version == 1
        assert sealed.key_version == 1
        assert SECRET.encode() not in sealed.token
        # header 5 + nonce 12 + ciphertext + tag 16
        assert len(sealed.token) == 5 + 12 + len(SECRET) + 16

    def test_older_key_versions_still_open_and_new_seals_use_the_newest(self) -> None:
        tenant, row = uuid7(), uuid7()
        v1, v2 = os.urandom(32), os.urandom(32)
        before = TenantCipher(tenant, active_version=1, data_keys={1: v1}, index_key=None)
        after = TenantCipher(tenant, active_version=2, data_keys={1: v1, 2: v2}, index_key=None)
        old = before.seal(SECRET, field=FIELD, row=row)
        new = after.seal(SECRET, field=FIELD, row=row)
        assert (old.key_version, new.key_version) == (1, 2)
        assert after.open(old, field=FIELD, row=row) == SECRET
        assert after.open(new, field=FIELD, row=row) == SECRET
        with pytest.raises(TenantKeyMissing, match="data key v2"):
            before.open(new, field=FIELD, row=row)


class TestOwnerBinding:
    def test_other_row_is_rejected(self, cipher: TenantCipher) -> None:
        sealed = cipher.seal(SECRET, field=FIELD, row=uuid7())
        with pytest.raises(SealedValueRejected, match="row"):
            cipher.open(sealed, field=FIELD, row=uuid7())

    def test_other_field_is_rejected(self, cipher: TenantCipher) -> None:
        row = uuid7()
        sealed = cipher.seal(SECRET, field=FIELD, row=row)
        with pytest.raises(SealedValueRejected, match=r"webhooks\.secret"):
            cipher.open(sealed, field="webhooks.secret", row=row)

    def test_other_tenant_is_rejected_even_with_the_same_key(self) -> None:
        key, row = os.urandom(32), uuid7()
        mine = TenantCipher(uuid7(), active_version=1, data_keys={1: key}, index_key=None)
        theirs = TenantCipher(uuid7(), active_version=1, data_keys={1: key}, index_key=None)
        sealed = mine.seal(SECRET, field=FIELD, row=row)
        with pytest.raises(SealedValueRejected) as caught:
            theirs.open(sealed, field=FIELD, row=row)
        assert str(theirs.tenant_id) in str(caught.value)

    def test_error_names_the_owner_and_never_the_plaintext(self, cipher: TenantCipher) -> None:
        row = uuid7()
        sealed = cipher.seal(SECRET, field=FIELD, row=row)
        with pytest.raises(SealedValueRejected) as caught:
            cipher.open(sealed, field=FIELD, row=uuid7())
        message = str(caught.value)
        assert FIELD in message
        assert "data key v1" in message
        assert SECRET not in message
        assert sealed.token.hex() not in message


class TestTampering:
    def test_every_flipped_bit_fails(self, cipher: TenantCipher) -> None:
        row = uuid7()
        token = cipher.seal(SECRET, field=FIELD, row=row).token
        for position in range(len(token)):
            for bit in range(8):
                altered = bytearray(token)
                altered[position] ^= 1 << bit
                with pytest.raises(CryptoError):
                    cipher.open(Sealed(bytes(altered)), field=FIELD, row=row)

    def test_flipped_ciphertext_bit_is_rejected_specifically(self, cipher: TenantCipher) -> None:
        row = uuid7()
        altered = bytearray(cipher.seal(SECRET, field=FIELD, row=row).token)
        altered[20] ^= 0x01
        with pytest.raises(SealedValueRejected):
            cipher.open(Sealed(bytes(altered)), field=FIELD, row=row)

    def test_truncated_value_is_malformed(self, cipher: TenantCipher) -> None:
        row = uuid7()
        token = cipher.seal(SECRET, field=FIELD, row=row).token
        with pytest.raises(MalformedSealedValue, match="too short"):
            cipher.open(Sealed(token[:20]), field=FIELD, row=row)
        with pytest.raises(SealedValueRejected):
            cipher.open(Sealed(token[:-1]), field=FIELD, row=row)

    def test_unknown_format_version_is_named(self, cipher: TenantCipher) -> None:
        row = uuid7()
        token = cipher.seal(SECRET, field=FIELD, row=row).token
        with pytest.raises(UnknownFormatVersion, match="format version 9"):
            cipher.open(Sealed(b"\x09" + token[1:]), field=FIELD, row=row)

    def test_unknown_data_key_version_is_named(self, cipher: TenantCipher) -> None:
        row = uuid7()
        token = cipher.seal(SECRET, field=FIELD, row=row).token
        other = token[:1] + (7).to_bytes(4, "big") + token[5:]
        with pytest.raises(TenantKeyMissing, match="data key v7"):
            cipher.open(Sealed(other), field=FIELD, row=row)


class TestNonces:
    def test_nonce_never_repeats_across_100k_seals(self, cipher: TenantCipher) -> None:
        row = uuid7()
        nonces = {cipher.seal("x", field=FIELD, row=row).token[5:17] for _ in range(100_000)}
        assert len(nonces) == 100_000

    def test_a_forked_child_never_reuses_the_parents_nonces(self, cipher: TenantCipher) -> None:
        row = uuid7()
        cipher.seal("x", field=FIELD, row=row)  # the parent now holds a block of nonces
        child = set(
            made_in_a_child(lambda: cipher.seal("x", field=FIELD, row=row).token[5:17], 500)
        )
        parent = {cipher.seal("x", field=FIELD, row=row).token[5:17] for _ in range(500)}
        assert len(child) == 500
        assert not child & parent

    def test_same_plaintext_seals_differently(self, cipher: TenantCipher) -> None:
        row = uuid7()
        assert cipher.seal(SECRET, field=FIELD, row=row) != cipher.seal(
            SECRET, field=FIELD, row=row
        )


class TestSealedValue:
    def test_repr_and_str_hide_everything(self, cipher: TenantCipher) -> None:
        sealed = cipher.seal(SECRET, field=FIELD, row=uuid7())
        assert repr(sealed) == "***"
        assert str(sealed) == "***"
        assert f"{sealed}" == "***"
        assert repr({"secret": sealed}) == "{'secret': ***}"
        assert "TenantCipher" in repr(cipher)
        assert "versions=[1]" in repr(cipher)

    def test_column_type_refuses_plaintext(self) -> None:
        column = SealedColumn()
        dialect = sqlite.dialect()
        with pytest.raises(TypeError, match="seal it first"):
            column.process_bind_param(SECRET, dialect)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            column.process_bind_param(SECRET.encode(), dialect)  # type: ignore[arg-type]

    def test_column_type_wraps_without_io(self, cipher: TenantCipher) -> None:
        column, dialect = SealedColumn(), sqlite.dialect()
        sealed = cipher.seal(SECRET, field=FIELD, row=uuid7())
        stored = column.process_bind_param(sealed, dialect)
        assert stored == sealed.token
        assert column.process_result_value(stored, dialect) == sealed
        assert column.process_bind_param(None, dialect) is None
        assert column.process_result_value(None, dialect) is None


class TestBlindIndex:
    def test_equal_after_normalising(self, cipher: TenantCipher) -> None:
        first = cipher.blind_index("  1EG4 TE5\tMK73 ", field="complaints.mbi")
        assert first == cipher.blind_index("1eg4 te5 mk73", field="complaints.mbi")
        assert len(first) == 64
        assert int(first, 16) >= 0

    def test_differs_by_field_tenant_and_value(self, cipher: TenantCipher) -> None:
        base = cipher.blind_index("1EG4TE5MK73", field="complaints.mbi")
        assert base != cipher.blind_index("1EG4TE5MK74", field="complaints.mbi")
        assert base != cipher.blind_index("1EG4TE5MK73", field="complaints.other")
        assert base != make_cipher().blind_index("1EG4TE5MK73", field="complaints.mbi")

    def test_custom_normaliser(self, cipher: TenantCipher) -> None:
        def strip_dashes(value: str) -> str:
            return value.replace("-", "").upper()

        assert cipher.blind_index(
            "1eg4-te5-mk73", field="f", normalise=strip_dashes
        ) == cipher.blind_index("1EG4TE5MK73", field="f", normalise=strip_dashes)

    def test_missing_index_key_is_named(self) -> None:
        bare = TenantCipher(
            uuid7(), active_version=1, data_keys={1: os.urandom(32)}, index_key=None
        )
        with pytest.raises(TenantKeyMissing, match=r"complaints\.mbi"):
            bare.blind_index("x", field="complaints.mbi")


class TestFingerprint:
    def test_exact_text_gives_the_same_fingerprint(self, cipher: TenantCipher) -> None:
        row = '"1001","H1234","said ""no"", then hung up"'
        first = cipher.fingerprint(row, field="complaints.content")
        assert first == cipher.fingerprint(row, field="complaints.content")
        assert len(first) == 32
        assert int(first, 16) >= 0

    def test_nothing_is_normalised(self, cipher: TenantCipher) -> None:
        base = cipher.fingerprint("a,b", field="f")
        assert base != cipher.fingerprint("a,b ", field="f")
        assert base != cipher.fingerprint("A,b", field="f")

    def test_differs_by_field_and_tenant_and_is_not_the_blind_index(
        self, cipher: TenantCipher
    ) -> None:
        base = cipher.fingerprint("1EG4TE5MK73", field="complaints.content")
        assert base != cipher.fingerprint("1EG4TE5MK73", field="complaints.other")
        assert base != make_cipher().fingerprint("1EG4TE5MK73", field="complaints.content")
        assert base not in cipher.blind_index(
            "1EG4TE5MK73", field="complaints.content", normalise=str
        )

    def test_missing_index_key_is_named(self) -> None:
        bare = TenantCipher(
            uuid7(), active_version=1, data_keys={1: os.urandom(32)}, index_key=None
        )
        with pytest.raises(TenantKeyMissing, match=r"complaints\.content"):
            bare.fingerprint("x", field="complaints.content")
