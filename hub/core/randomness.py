"""Random values drawn from the OS in blocks: one system call serves thousands of them.

A forked child forgets the block it inherited, so parent and child never hand out the same
bits (nonces must never repeat; ids must never collide).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class RandomBlocks(Generic[T]):
    def __init__(self, width: int, convert: Callable[[bytes], T], per_block: int = 4096) -> None:
        self._width, self._convert, self._per_block = width, convert, per_block
        self._values: Iterator[T] = iter(())
        os.register_at_fork(after_in_child=self._forget)

    def take(self) -> T:
        """The next value (a list iterator's next() is atomic: none is handed out twice)."""
        value = next(self._values, None)
        return value if value is not None else self._refill()

    def _forget(self) -> None:
        self._values = iter(())

    def _refill(self) -> T:
        width, convert = self._width, self._convert
        block = os.urandom(width * self._per_block)
        fresh = iter([convert(block[i : i + width]) for i in range(0, len(block), width)])
        self._values = fresh
        return next(fresh)
