"""Bytes in, CSV records out, holding only the unfinished record between chunks.

A chunk is cut after the last line end at which the count of `"` seen so far is even, so a
quoted field holding line breaks is never split; `csv.reader` then parses whole records with
`newline=''` semantics, which keeps CRLF inside a quoted field as CRLF.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable

from hub.ctm.errors import FileRejected, FileTruncated

_END_OF_DATA = "unexpected end of data"


class RecordSplitter:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self._carry = ""
        self._bytes_seen = 0

    @property
    def bytes_seen(self) -> int:
        return self._bytes_seen

    def feed(self, chunk: bytes) -> list[list[str]]:
        text = self._carry + self._decode(chunk, final=False)
        self._bytes_seen += len(chunk)
        cut = self._cut(text)
        if cut <= 0:
            self._carry = text
            return []
        self._carry = text[cut:]
        return list(csv.reader(io.StringIO(text[:cut], newline="")))

    def close(self) -> list[list[str]]:
        """The last records; rejects a file that ends inside a quoted field (truncated)."""
        text = self._carry + self._decode(b"", final=True)
        self._carry = ""
        if not text:
            return []
        try:
            return list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as error:
            if _END_OF_DATA in str(error):
                raise FileTruncated(
                    "the file ends inside a quoted field: it is truncated"
                ) from None
        # Malformed but readable (a stray quote): csv's lenient reading is the better guess.
        return list(csv.reader(io.StringIO(text, newline="")))

    def _decode(self, chunk: bytes, *, final: bool) -> str:
        try:
            return self._decoder.decode(chunk, final)
        except UnicodeDecodeError as error:
            offset = self._bytes_seen + error.start
            message = f"the file is not UTF-8 text (bad byte near offset {offset})"
            raise FileRejected(message) from None

    @staticmethod
    def _cut(text: str) -> int:
        """Position just after the last line end outside quotes, or 0."""
        end = max(text.rfind("\n"), text.rfind("\r"))
        while end >= 0:
            if text.count('"', 0, end + 1) % 2 == 0:
                return end + 1
            end = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end))
        return 0


class _Line:
    """A file-like sink for csv.writer that hands back what was written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


class RecordWriter:
    """CSV records to bytes, every field quoted, CRLF between records (RFC 4180).

    Quoting everything keeps commas, quotes, CR, LF and leading or trailing spaces of free
    text exactly as they were.
    """

    def __init__(self) -> None:
        self._line = _Line()
        self._writer = csv.writer(self._line, quoting=csv.QUOTE_ALL, lineterminator="\r\n")

    def encode(self, fields: Iterable[str]) -> bytes:
        self._writer.writerow(fields)
        return self._line.text.encode("utf-8")
