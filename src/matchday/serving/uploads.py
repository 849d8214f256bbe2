"""A ``multipart/form-data`` upload read to files as it arrives: never held in memory, refused past its
size limit, its artifact hashed on the way in.

The registry's upload route (``POST /v1/models/{name}/versions``) reads its body here: file parts go
to files in a folder of their own (the caller removes it), text fields to a small dict. Each wait for
the next chunk is bounded by the body timeout (408, as for every body: a stalled upload holds a
connection no longer than a stalled prediction), the whole body by ``max_bytes`` (413, said before a
byte is read when Content-Length is over it).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from matchday.serving.errors import BadRequest, BodyTimeout, PayloadTooLarge

MAX_FIELD_BYTES = 1024 * 1024  # a text field (a signature with its categories is the largest)
MAX_PARTS = 32


@dataclass
class UploadedFile:
    """A file part: where it was written, the name the client gave it, its size and sha256."""

    path: Path
    filename: str
    size: int = 0
    sha256: str = ""


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.text = bytearray()
        self.file: UploadedFile | None = None
        self.out: IO[bytes] | None = None
        self.hash: Any = None


class _Collector:
    """python-multipart's callbacks: each part's headers, then its bytes to a file or a field."""

    def __init__(self, folder: Path, file_fields: frozenset[str], text_fields: frozenset[str]) -> None:
        self.folder = folder
        self.file_fields, self.text_fields = file_fields, text_fields
        self.upload = Upload()
        self.part = _Part()
        self.header_name, self.header_value = b"", b""
        self.parts = 0

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(f"the upload has more than {MAX_PARTS} parts")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.strip().lower()] = self.header_value.strip()
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition"))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        known = sorted(self.file_fields | self.text_fields)
        if not name:
            raise BadRequest("a part of the upload has no name (Content-Disposition: form-data; name=...)")
        if name in self.upload.fields or name in self.upload.files:
            raise BadRequest(f"the field {name!r} is sent twice")
        if name not in self.file_fields and name not in self.text_fields:
            raise BadRequest(f"unknown field {name!r}; the fields are {', '.join(known)}")
        self.part.name = name
        if name in self.file_fields:
            filename = options.get(b"filename", b"").decode("utf-8", "replace")
            path = self.folder / f"{name}.part"
            self.part.file = UploadedFile(path, Path(filename).name or name)
            self.part.out = path.open("wb")
            self.part.hash = hashlib.sha256()
        elif b"filename" in options:
            raise BadRequest(f"the field {name!r} is a value, not a file")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.out is not None:
            self.part.out.write(chunk)
            self.part.hash.update(chunk)
            assert self.part.file is not None
            self.part.file.size += len(chunk)
            return
        if len(self.part.text) + len(chunk) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(f"the field {self.part.name!r} is over {MAX_FIELD_BYTES:,} bytes")
        self.part.text.extend(chunk)

    def on_part_end(self) -> None:
        part = self.part
        if part.file is not None:
            assert part.out is not None
            part.out.close()
            part.out = None
            part.file.sha256 = part.hash.hexdigest()
            self.upload.files[part.name] = part.file
        else:
            try:
                self.upload.fields[part.name] = part.text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"the field {part.name!r} is not UTF-8 text") from exc

    def close(self) -> None:
        if self.part.out is not None:
            self.part.out.close()


async def read_upload(
    receive: Receive,
    headers: Any,
    folder: Path,
    *,
    file_fields: frozenset[str],
    text_fields: frozenset[str],
    max_bytes: int,
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
) -> Upload:
    """The body's fields and files (written under ``folder``), or the error that says what is wrong
    with it: 400 for a malformed body or an unknown field, 413 past ``max_bytes``, 408 when it stalls."""
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(
            f"the upload is {int(length):,} bytes; the limit is {max_bytes:,} (MATCHDAY_MAX_UPLOAD_BYTES)"
        )
    _, options = parse_options_header(headers.get("content-type"))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("the multipart/form-data body has no boundary in its Content-Type")
    collector = _Collector(folder, file_fields, text_fields)
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in _chunks(receive, max_bytes, timeout, on_timeout):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"the body is not valid multipart/form-data: {exc}") from exc
    finally:
        collector.close()
    if collector.parts == 0:
        raise BadRequest("the multipart/form-data body has no parts")
    return collector.upload


async def _chunks(
    receive: Receive, max_bytes: int, timeout: float, on_timeout: Callable[[], None] | None
) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, each awaited at most ``timeout`` seconds."""
    size = 0
    while True:
        try:
            async with asyncio.timeout(timeout):
                message = await receive()
        except TimeoutError:
            if on_timeout is not None:
                on_timeout()
            raise BodyTimeout(
                f"the upload stalled: nothing more of it arrived for {timeout:g} s "
                "(the body timeout, MATCHDAY_BODY_TIMEOUT)"
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the upload is over the limit of {max_bytes:,} bytes (MATCHDAY_MAX_UPLOAD_BYTES)")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
