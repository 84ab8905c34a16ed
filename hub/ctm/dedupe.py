"""Which (contract, complaint ID) pairs a file has shown already, and on which row.

The first `memory_keys` pairs live in a dict; past that the index moves to a temporary
SQLite file, so a parse's memory stays flat however large the file (CTM-API.md: memory flat
in file size) and duplicates are still found exactly.
"""

from __future__ import annotations

import sqlite3
import tempfile

DEFAULT_MEMORY_KEYS = 100_000
_QUERY_KEYS = 500  # keys per SELECT ... IN (...), well under SQLite's variable limit


class SeenComplaints:
    def __init__(self, memory_keys: int = DEFAULT_MEMORY_KEYS) -> None:
        # contract -> complaint ID -> row: the contract string is shared, so a key costs
        # one small string and one int.
        self._memory: dict[str, dict[str, int]] = {}
        self._count = 0
        self._memory_keys = memory_keys
        self._disk: sqlite3.Connection | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def remember(self, contract: str, complaint_id: str, row: int) -> int | None:
        """Record that `row` holds the pair; return the row that held it before, if any."""
        return self.remember_all([(contract, complaint_id, row)])[0]

    def remember_all(self, pairs: list[tuple[str, str, int]]) -> list[int | None]:
        """`remember` for many rows in order (one round trip to the disk index)."""
        found: list[int | None] = []
        for index, (contract, complaint_id, row) in enumerate(pairs):
            if self._disk is not None:
                return found + self._remember_on_disk(pairs[index:])
            rows = self._memory.get(contract)
            if rows is None:
                rows = self._memory.setdefault(contract, {})
            previous = rows.get(complaint_id)
            rows[complaint_id] = row
            if previous is None:
                self._count += 1
                if self._count > self._memory_keys:
                    self._spill()
            found.append(previous)
        return found

    def _remember_on_disk(self, pairs: list[tuple[str, str, int]]) -> list[int | None]:
        assert self._disk is not None
        keys = [f"{contract}\x1f{complaint_id}" for contract, complaint_id, _ in pairs]
        stored: dict[str, int] = {}
        for start in range(0, len(keys), _QUERY_KEYS):
            some = keys[start : start + _QUERY_KEYS]
            marks = ",".join("?" * len(some))
            query = f"SELECT key, row FROM seen WHERE key IN ({marks})"  # noqa: S608 - marks only
            stored.update(self._disk.execute(query, some).fetchall())
        found: list[int | None] = []
        for key, (_, _, row) in zip(keys, pairs, strict=True):
            found.append(stored.get(key))
            stored[key] = row
        latest = {key: row for key, (_, _, row) in zip(keys, pairs, strict=True)}
        self._disk.executemany(
            "INSERT OR REPLACE INTO seen (key, row) VALUES (?, ?)", latest.items()
        )
        return found

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None
        self._memory.clear()

    def _spill(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="ctm-parse-")
        disk = sqlite3.connect(f"{self._directory.name}/seen.db", isolation_level=None)
        disk.execute("PRAGMA journal_mode = OFF")
        disk.execute("PRAGMA synchronous = OFF")
        disk.execute("PRAGMA cache_size = -2048")  # 2 MiB of page cache, whatever the file
        disk.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, row INTEGER) WITHOUT ROWID")
        disk.execute("BEGIN")
        disk.executemany(
            "INSERT INTO seen (key, row) VALUES (?, ?)",
            (
                (f"{contract}\x1f{complaint}", row)
                for contract, rows in self._memory.items()
                for complaint, row in rows.items()
            ),
        )
        self._memory = {}
        self._disk = disk
