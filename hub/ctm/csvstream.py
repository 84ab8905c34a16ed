"""Bytes in, CSV records out, holding only the unfinished record between chunks.

A chunk is cut after the last line end at which the count of `"` seen so far is even, so a
quoted field holding line breaks is never split; `csv.reader` then parses whole records with
`newline=''` semantics, which keeps CRLF inside a quoted field as CRLF.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import cast

from hub.ctm.errors import FileRejected, FileTruncated

_END_OF_DATA = "unexpected end of data"
# csv.reader refuses a cell longer than its limit (131,072 characters by default); a
# complaint's free text may be longer, and must import exactly. Past this, a row is refused.
CELL_LIMIT = 1 << 20
CELL_TOO_LONG = f"a cell is longer than {CELL_LIMIT:,} characters"
# An unfinished record this long is checked with csv itself (see RecordSplitter).
RECHECK_CHARS = 2 * CELL_LIMIT


# What the decoder's `surrogateescape` makes of bytes that are not UTF-8.
_ESCAPED = re.compile("[\udc80-\udcff]+")


def _allow_long_cells() -> None:
    if csv.field_size_limit() < CELL_LIMIT:
        csv.field_size_limit(CELL_LIMIT)


def _records(text: str) -> list[list[str]]:
    """`csv.reader`'s lenient reading of whole records; a cell past the limit refuses the
    file (the parser's triage quarantines such a row on its own instead)."""
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        raise FileRejected(CELL_TOO_LONG) from None


class RecordSplitter:
    def __init__(self) -> None:
        _allow_long_cells()
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        # The unfinished record, in the pieces it came in, and how many quotes they hold:
        # a record spanning many chunks is joined once, not once per chunk.
        self._carry: list[str] = []
        self._carry_quotes = 0
        self._carry_size = 0
        # Past this, the carry is read by csv itself: a stray quote in an unquoted cell
        # (a character to csv) would otherwise hold the rest of the file here.
        self._recheck_at = RECHECK_CHARS
        self._is_csv_block = False  # the last block was cut where csv found a record's end
        self._bytes_seen = 0
        self.foreign_bytes = 0  # bytes that were not UTF-8, read as Windows-1252
        self.first_foreign_at: int | None = None  # near which byte offset the first was

    @property
    def bytes_seen(self) -> int:
        return self._bytes_seen

    def feed(self, chunk: bytes) -> list[list[str]]:
        block = self._block(chunk)
        return _records(block) if block else []

    def feed_raw(self, chunk: bytes) -> list[str | list[str]]:
        """Like `feed`, but each record as its raw text (line end dropped) where that can be
        cut without parsing; a record is a list of cells only where the text uses bare CR
        line ends, which only `csv.reader` splits correctly."""
        block = self._block(chunk)
        if self._is_csv_block:
            return cast("list[str | list[str]]", _records(block))
        return _raw_records(block) if block else []

    def _block(self, chunk: bytes) -> str:
        """The whole records the text so far holds ('' for none yet); the rest is kept."""
        text = self._decode(chunk, final=False)
        self._bytes_seen += len(chunk)
        self._is_csv_block = False
        cut = self._cut(text)
        if cut is not None:
            self._recheck_at = RECHECK_CHARS
            return self._keep("".join(self._carry) + text, len(text) - cut)
        if text:
            self._carry.append(text)
            self._carry_quotes += text.count('"')
            self._carry_size += len(text)
        if self._carry_size < self._recheck_at:
            return ""
        carried = "".join(self._carry)
        cut = _csv_cut(carried)
        self._recheck_at = max(RECHECK_CHARS, 2 * (len(carried) - cut))
        self._is_csv_block = cut > 0
        return self._keep(carried, len(carried) - cut)

    def _keep(self, text: str, kept: int) -> str:
        """Carry the last `kept` characters of `text`; the rest is the block handed out."""
        rest = text[len(text) - kept :]
        self._carry, self._carry_quotes = ([rest] if rest else []), rest.count('"')
        self._carry_size = kept
        return text[: len(text) - kept]

    def _rest(self) -> str:
        """The carried text and whatever the decoder still held: the end of the input."""
        text = "".join(self._carry) + self._decode(b"", final=True)
        self._carry, self._carry_quotes, self._carry_size = [], 0, 0
        return text

    def close_raw(self) -> list[str | list[str]]:
        """`close` for `feed_raw`: the last records as text (cells past a bare CR)."""
        text = self._rest()
        if not text:
            return []
        if text.count('"') % 2:
            return list(self.close_text(text))
        return _raw_records(text if text.endswith(("\n", "\r")) else text + "\n")

    def close(self) -> list[list[str]]:
        """The last records; rejects a file that ends inside a quoted field (truncated)."""
        text = self._rest()
        if not text:
            return []
        return self.close_text(text)

    @staticmethod
    def close_text(text: str) -> list[list[str]]:
        try:
            return list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as error:
            if _END_OF_DATA in str(error):
                raise FileTruncated(
                    "the file ends inside a quoted field: it is truncated"
                ) from None
        # Malformed but readable (a stray quote): csv's lenient reading is the better guess.
        return _records(text)

    def _decode(self, chunk: bytes, *, final: bool) -> str:
        """UTF-8 text; a byte that is not UTF-8 is read as Windows-1252 (what such a byte
        in a US file almost always is: a summary pasted from a word processor) and counted,
        so that one such byte neither refuses the whole file (every complaint of the
        contract, immediate needs too, until CMS fixes it) nor is lost."""
        try:
            return self._decoder.decode(chunk, final)
        except UnicodeDecodeError as error:
            if self.first_foreign_at is None:
                self.first_foreign_at = self._bytes_seen + max(0, error.start)
        # The decoder keeps its state when it raises: decode the chunk again, escaping.
        self._decoder.errors = "surrogateescape"
        try:
            text = self._decoder.decode(chunk, final)
        finally:
            self._decoder.errors = "strict"
        return _ESCAPED.sub(self._as_cp1252, text)

    def _as_cp1252(self, match: re.Match[str]) -> str:
        escaped = match.group()
        self.foreign_bytes += len(escaped)
        return bytes(ord(c) - 0xDC00 for c in escaped).decode("cp1252", errors="replace")

    def _cut(self, text: str) -> int | None:
        """Position in `text` (the newest piece) just after the last line end outside
        quotes, or None. The carry holds no such line end (it would have been cut there)
        but perhaps a CR that ended it, held back as maybe half of a CRLF; a CR that ends
        `text` is held back the same way. Quotes are counted back from the end, once."""
        quotes, done = self._carry_quotes + text.count('"'), len(text)
        end = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1))
        while end >= 0:
            quotes -= text.count('"', end + 1, done)
            done = end + 1
            if quotes % 2 == 0:
                return end + 1
            end = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end))
        if text and self._carry and self._carry[-1].endswith("\r") and self._carry_quotes % 2 == 0:
            return 0  # the carry's last CR is a line end of its own: no LF came after it
        return None


def _csv_cut(text: str) -> int:
    """Position just after the last record but one that csv.reader finds in `text` (the
    last may be unfinished), or 0; csv reads one line at a time and never past a record."""
    read = 0

    def lines() -> Iterator[str]:
        nonlocal read
        for line in io.StringIO(text, newline=""):
            read += len(line)
            yield line

    cut = end = 0
    try:
        for _ in csv.reader(lines()):
            cut, end = end, read
    except csv.Error:  # a cell past the limit: refused when the block is read
        pass
    return cut


def _raw_records(block: str) -> list[str | list[str]]:
    """The records of `block` (which ends with a line end outside quotes), each as its
    text: physical lines are joined while a quoted field holds line breaks (by the parity
    of quotes, as `_cut` does). Text with bare CR line ends (outside quotes) is read by
    `csv.reader`, which splits it there, and its records come out as cells."""
    crs = block.count("\r")
    if crs and crs == block.count("\r\n") == block.count("\n"):
        lines, ends = block.split("\r\n"), "\r\n"  # CRLF throughout: no CR left to strip
    else:
        lines, ends = block.split("\n"), "\n"
    if not lines[-1]:
        lines.pop()  # nothing after the last line end (a block may also end with a bare CR)
    quoted = '"' in block
    if not quoted and (ends == "\r\n" or not crs):
        return list(lines)
    if ends == "\r\n":
        return cast("list[str | list[str]]", _joined(lines))
    texts = _joined(lines, "\n") if quoted else lines
    if not crs:
        return cast("list[str | list[str]]", texts)
    records: list[str | list[str]] = []
    for text in texts:
        if text.endswith("\r"):
            text = text[:-1]
        if "\r" in text and _bare_cr(text):
            records.extend(_records(text))
        else:
            records.append(text)
    return records


def _joined(lines: list[str], ends: str = "\r\n") -> list[str]:
    """Lines as records, joined again with `ends` where a quoted field holds line breaks: a
    line with an odd count of quotes opens a quoted field, and the next such line closes it
    (lines between hold an even count, which leaves the field open). Most blocks have
    none: their lines are their records."""
    odd = [at for at, line in enumerate(lines) if line.count('"') & 1]
    if not odd:
        return list(lines)
    records: list[str] = []
    done, marks = 0, iter(odd)
    for opens in marks:
        closes = next(marks, len(lines) - 1)  # none: not in a block cut outside quotes
        records.extend(lines[done:opens])
        records.append(ends.join(lines[opens : closes + 1]))
        done = closes + 1
    records.extend(lines[done:])
    return records


def _bare_cr(text: str) -> bool:
    """Whether a CR outside quotes ends a record inside `text` (old Mac line ends)."""
    quotes, done = 0, 0
    at = text.find("\r")
    while at >= 0:
        quotes += text.count('"', done, at)
        done = at
        if quotes % 2 == 0:
            return True
        at = text.find("\r", at + 1)
    return False


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
