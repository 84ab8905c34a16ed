"""The master key ring: where it loads from, and wrapping tenant keys under it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from hub.core.crypto import (
    LocalKeyRingProvider,
    MasterKeyError,
    MasterKeyRing,
    keyring,
    load_key_ring,
)
from hub.core.crypto.keyring import WrapKeyRejected, WrapKeyUnknown, generate_master_key
from hub.settings import Settings, load_settings


def ring_text(*versions: str) -> str:
    return ",".join(f"{v}:{base64.b64encode(os.urandom(32)).decode()}" for v in versions)


def settings_for(tmp_path: Path, **values: object) -> Settings:
    return load_settings(data_dir=tmp_path / "data", **values)


class TestLoading:
    def test_ring_from_variable_newest_first(self, tmp_path: Path) -> None:
        ring = load_key_ring(settings_for(tmp_path, master_keys=ring_text("v2", "v1")))
        assert ring.versions == ["v2", "v1"]
        assert ring.active_version == "v2"

    def test_ring_from_file(self, tmp_path: Path) -> None:
        path = tmp_path / "ring.key"
        path.write_text(ring_text("k3") + "\n" + ring_text("k2") + "\n")
        path.chmod(0o600)
        ring = load_key_ring(settings_for(tmp_path, master_key_file=path))
        assert ring.versions == ["k3", "k2"]

    def test_unreadable_file_is_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.key"
        with pytest.raises(MasterKeyError, match="HUB_MASTER_KEY_FILE: cannot read"):
            load_key_ring(settings_for(tmp_path, master_key_file=missing))

    def test_bad_file_content_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.key"
        path.write_text("v1:not-base64!")
        with pytest.raises(MasterKeyError, match=r"bad\.key.*not valid base64"):
            load_key_ring(settings_for(tmp_path, master_key_file=path))

    def test_embedded_default_generates_a_private_key_file_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        warnings: list[str] = []
        monkeypatch.setattr(
            keyring.log, "warning", lambda event, **_: warnings.append(event), raising=False
        )
        settings = settings_for(tmp_path)
        first = load_key_ring(settings)
        path = settings.default_master_key_file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [w for w in warnings if "local use only" in w] == [warnings[0]]
        second = load_key_ring(settings)
        assert first.versions == second.versions == ["local1"]
        assert first.cipher("local1") is not None
        # the same key both times: what the first wrapped, the second unwraps
        probe = first.cipher("local1")
        again = second.cipher("local1")
        assert probe is not None
        assert again is not None
        nonce = os.urandom(12)
        assert again.decrypt(nonce, probe.encrypt(nonce, b"k", b"c"), b"c") == b"k"

    def test_repr_shows_versions_only(self) -> None:
        text = ring_text("v1")
        ring = MasterKeyRing.parse(text)
        assert repr(ring) == "MasterKeyRing(versions=['v1'])"
        assert text.split(":")[1] not in repr(ring)

    def test_generated_entry_parses(self) -> None:
        assert MasterKeyRing.parse(generate_master_key("v9")).versions == ["v9"]
        with pytest.raises(MasterKeyError, match="version"):
            generate_master_key("bad:name")


class TestProvider:
    async def test_wrap_unwrap_round_trip_records_version(self) -> None:
        provider = LocalKeyRingProvider(MasterKeyRing.parse(ring_text("v2", "v1")))
        wrapped = await provider.wrap(b"d" * 32, context=b"tenant-a")
        assert wrapped.master_version == "v2"
        assert b"d" * 32 not in wrapped.blob
        assert await provider.unwrap(wrapped, context=b"tenant-a") == b"d" * 32

    async def test_other_context_is_rejected(self) -> None:
        provider = LocalKeyRingProvider(MasterKeyRing.parse(ring_text("v1")))
        wrapped = await provider.wrap(b"d" * 32, context=b"tenant-a")
        with pytest.raises(WrapKeyRejected):
            await provider.unwrap(wrapped, context=b"tenant-b")

    async def test_wrong_key_under_the_right_name_is_rejected(self) -> None:
        wrapped = await LocalKeyRingProvider(MasterKeyRing.parse(ring_text("v1"))).wrap(
            b"d" * 32, context=b"c"
        )
        impostor = LocalKeyRingProvider(MasterKeyRing.parse(ring_text("v1")))
        with pytest.raises(WrapKeyRejected, match="'v1'"):
            await impostor.unwrap(wrapped, context=b"c")

    async def test_version_missing_from_ring_is_named(self) -> None:
        wrapped = await LocalKeyRingProvider(MasterKeyRing.parse(ring_text("old"))).wrap(
            b"d" * 32, context=b"c"
        )
        newer = LocalKeyRingProvider(MasterKeyRing.parse(ring_text("new")))
        assert not newer.has_version("old")
        with pytest.raises(WrapKeyUnknown, match="'old'"):
            await newer.unwrap(wrapped, context=b"c")
