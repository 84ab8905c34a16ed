"""Primary keys are time-ordered UUIDv7s."""

from __future__ import annotations

import os
import pickle
import time
from uuid import UUID

from hub.core.ids import uuid7


class TestUuid7:
    def test_version_and_variant(self) -> None:
        ident = uuid7()
        assert ident.version == 7
        assert ident.variant == "specified in RFC 4122"

    def test_ids_made_in_a_row_keep_increasing(self) -> None:
        made = [uuid7() for _ in range(50_000)]
        assert made == sorted(made)
        assert len(set(made)) == len(made)

    def test_timestamp_is_now(self) -> None:
        millis = uuid7().int >> 80
        assert abs(millis - time.time() * 1000) < 5_000

    def test_equals_the_same_uuid_built_the_standard_way(self) -> None:
        ident = uuid7()
        same = UUID(str(ident))
        assert same == ident
        assert hash(same) == hash(ident)
        assert same.bytes == ident.bytes
        assert pickle.loads(pickle.dumps(ident)) == ident  # noqa: S301 - our own bytes

    def test_a_forked_child_never_reuses_the_parents_randomness(self) -> None:
        uuid7()  # the parent now holds a block of random bits
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: make ids, send their random parts, leave without cleanup
            os.close(read_end)
            os.write(write_end, b"".join(uuid7().bytes[8:] for _ in range(500)))
            os._exit(0)
        os.close(write_end)
        received = b""
        while chunk := os.read(read_end, 65536):
            received += chunk
        os.close(read_end)
        os.waitpid(pid, 0)
        child = {received[i : i + 8] for i in range(0, len(received), 8)}
        parent = {uuid7().bytes[8:] for _ in range(500)}
        assert len(child) == 500
        assert not child & parent
