"""One complaint download, streamed from the HTTP response into the parser."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection
from datetime import date
from typing import TYPE_CHECKING

import httpx

from hub.ctm import modeled
from hub.ctm.credentials import CtmCredentials
from hub.ctm.errors import CtmProtocolError, FileTruncated, TruncatedDownload
from hub.ctm.parser import ComplaintParser, ComplaintRecord, Issue, ParseSummary, RawRow

if TYPE_CHECKING:
    from hub.ctm.client import CtmClient


_CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/octet-stream", ""}


class ComplaintDownload:
    """One download, iterated once: `async for batch in download`. Discard every batch it
    gave if iteration raises (`TruncatedDownload`, `CtmProtocolError`, `FileRejected`)."""

    def __init__(
        self,
        client: CtmClient,
        credentials: CtmCredentials,
        contract: str,
        start: date,
        end: date,
        parser: ComplaintParser,
    ) -> None:
        self.contract = contract
        self.bytes_read = 0
        self._client, self._credentials = client, credentials
        self._start, self._end = start, end
        self._parser = parser
        self._iterator: AsyncGenerator[list[ComplaintRecord], None] | None = None
        self._rows: AsyncGenerator[list[RawRow], None] | None = None

    @property
    def summary(self) -> ParseSummary:
        return self._parser.summary

    def __aiter__(self) -> AsyncIterator[list[ComplaintRecord]]:
        if self._iterator is not None or self._rows is not None:
            raise RuntimeError("a download can be iterated once")
        self._iterator = self._batches()
        return self._iterator

    def rows(self) -> AsyncIterator[list[RawRow]]:
        """Iterate the download as unparsed rows (the parser's triage mode): hand every
        batch to `complete` before asking for the next one."""
        if self._iterator is not None or self._rows is not None:
            raise RuntimeError("a download can be iterated once")
        self._rows = self._raw_batches()
        return self._rows

    def complete(self, batch: list[RawRow], skip: Collection[int] = ()) -> list[ComplaintRecord]:
        """The batch's records, parsed, except the positions in `skip`."""
        return self._parser.complete(batch, skip)

    def take_quarantined(self) -> list[Issue]:
        """The quarantined rows found since the last call (see the parser's)."""
        return self._parser.take_quarantined()

    async def aclose(self) -> None:
        """Stop early: close the response now rather than when the iterator is collected."""
        for iterator in (self._iterator, self._rows):
            if iterator is not None:
                await iterator.aclose()

    async def _raw_batches(self) -> AsyncGenerator[list[RawRow], None]:
        response = await self._open()
        try:
            _check_csv_type(response)
            async for batch in self._parser.arows(self._body(response)):
                yield batch
        except FileTruncated as error:
            raise TruncatedDownload(f"contract {self.contract}: {error}") from None
        finally:
            self._parser.finish()
            await response.aclose()

    async def _open(self) -> httpx.Response:
        params = {
            modeled.DOWNLOAD_CONTRACT_PARAM: self.contract,
            modeled.DOWNLOAD_START_PARAM: self._start.strftime(modeled.DOWNLOAD_DATE_FORMAT),
            modeled.DOWNLOAD_END_PARAM: self._end.strftime(modeled.DOWNLOAD_DATE_FORMAT),
        }
        http = self._client._http

        def build(headers: dict[str, str]) -> httpx.Request:
            return http.build_request("GET", modeled.DOWNLOAD_PATH, params=params, headers=headers)

        return await self._client._call(
            "download", self._credentials, self.contract, build, stream=True
        )

    async def _batches(self) -> AsyncGenerator[list[ComplaintRecord], None]:
        response = await self._open()
        try:
            _check_csv_type(response)
            async for batch in self._parser.aparse(self._body(response)):
                yield batch
        except FileTruncated as error:
            raise TruncatedDownload(f"contract {self.contract}: {error}") from None
        finally:
            self._parser.finish()  # a failed parse never reached its close
            await response.aclose()

    async def _body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        first = True
        try:
            async for chunk in response.aiter_bytes():
                if first and chunk:
                    first = False
                    _check_not_html(chunk)
                self.bytes_read += len(chunk)
                yield chunk
        except httpx.TransportError as error:
            raise TruncatedDownload(
                f"contract {self.contract}: the download stopped after {self.bytes_read} bytes "
                f"({type(error).__name__})"
            ) from None
        declared = response.headers.get("Content-Length", "")
        arrived = response.num_bytes_downloaded
        if declared.isdigit() and int(declared) != arrived:
            raise TruncatedDownload(
                f"contract {self.contract}: {arrived} of {declared} bytes arrived"
            )


def _check_csv_type(response: httpx.Response) -> None:
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if "html" in media:
        raise CtmProtocolError(
            f"CMS answered an HTML page (status {response.status_code}), not CSV"
        )
    if media not in _CSV_TYPES:
        raise CtmProtocolError(f"CMS answered {media}, not CSV")


def _check_not_html(chunk: bytes) -> None:
    if chunk.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise CtmProtocolError("CMS answered an HTML page, not CSV")
