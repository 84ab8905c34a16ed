"""What a forked child makes, brought back to the parent (for fork-safety tests)."""

from __future__ import annotations

import os
from collections.abc import Callable


def made_in_a_child(make: Callable[[], bytes], count: int) -> list[bytes]:
    """`count` values `make` returns in a forked child (each the same length)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: make them, send them, leave without cleanup
        os.close(read_end)
        os.write(write_end, b"".join(make() for _ in range(count)))
        os._exit(0)
    os.close(write_end)
    received = b""
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    width = len(received) // count
    return [received[i : i + width] for i in range(0, len(received), width)]
