"""Reading exported tables: sniff the encoding and delimiter, find the header row, yield rows.

SEO tools export "CSV" in several dialects (docs/imports.md): Ahrefs writes UTF-16LE with tabs,
Screaming Frog UTF-8 with a BOM, German Search Console `;` with decimal commas, Moz puts metadata
lines before its header and GA4 `#` comment lines and several tables. This module hides that:
`ExportFile` decodes line by line (so a bad byte is reported with its line number), `find_header`
finds the header row by its *content*, and `records` streams rows with their line numbers through
the standard `csv` module.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Generic, TypeVar

from ..errors import InputFileError

__all__ = ["ExportFile", "Header", "find_header", "normalize_header", "records", "DELIMITERS"]

_SNIFF_BYTES = 64 * 1024
_HEADER_SCAN_LINES = 200  # GA4 files may put a chart-series table before the one we want
DELIMITERS: tuple[str, ...] = ("\t", ",", ";")
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon"}

csv.field_size_limit(16 * 1024 * 1024)  # page titles and contexts can be long; never a silent cut

M = TypeVar("M")


def normalize_header(name: str) -> str:
    """Header text as matched against our alias tables: no BOM or quotes, trimmed, lower case,
    single spaces."""
    return " ".join(name.replace("\ufeff", "").strip().strip('"').strip().lower().split())


class ExportFile:
    """A text export on disk (or a member of a zip archive), decoded line by line.

    The encoding is sniffed once from the first bytes: a UTF-16 BOM, a UTF-8 BOM, NUL-byte
    patterns of BOM-less UTF-16, then UTF-8, with cp1252 as the fallback (what Excel writes).
    """

    def __init__(self, path: str | Path, *, member: str | None = None) -> None:
        self.path = Path(path)
        self.member = member
        self.display = f"{self.path}:{member}" if member else str(self.path)
        if not self.path.exists():
            raise InputFileError("no such file", path=str(self.path))
        if self.path.is_dir():
            raise InputFileError("is a folder, not a file", path=str(self.path))
        with self._open() as stream:
            head = stream.read(_SNIFF_BYTES)
        self.head = head
        self.encoding = sniff_encoding(head, self.display)

    def _open(self) -> IO[bytes]:
        try:
            if self.member is None:
                return self.path.open("rb")
            # Members of the exports we read (Search Console's zip) are small: read one whole.
            with zipfile.ZipFile(self.path) as archive:
                return io.BytesIO(archive.read(self.member))
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise InputFileError(f"cannot read it ({exc.strerror or exc})", path=self.display) from None

    @property
    def encoding_label(self) -> str:
        return {"utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "cp1252": "Windows-1252",
                "utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE"}.get(self.encoding, self.encoding)

    def lines(self) -> Iterator[tuple[int, str]]:
        """(1-based line number, decoded line with its line ending), streaming."""
        with self._open() as stream:
            if self.encoding.startswith("utf-16"):
                # A UTF-16 newline is two bytes: let the codec split lines (newline="" keeps "\r\n").
                decoder = io.TextIOWrapper(stream, encoding=self.encoding, newline="")
                number = 0
                try:
                    for number, line in enumerate(decoder, start=1):
                        yield number, line.lstrip("\ufeff") if number == 1 else line
                except UnicodeDecodeError:
                    raise InputFileError(f"is not valid {self.encoding_label} text after line {number}",
                                         path=self.display) from None
                return
            for number, raw in enumerate(stream, start=1):
                try:
                    text = raw.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start:exc.start + 1].hex()
                    raise InputFileError(
                        f"is not valid {self.encoding_label} text (byte 0x{bad}); save the file as UTF-8",
                        path=self.display, line=number,
                    ) from None
                if number == 1:
                    text = text.lstrip("\ufeff")
                yield number, text


def sniff_encoding(head: bytes, display: str) -> str:
    """The codec for a file that starts with `head`; raises for binary and non-CSV files."""
    if not head.strip(b" \t\r\n\xef\xbb\xbf\xff\xfe\x00"):
        raise InputFileError("is empty", path=display)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            if magic == b"PK\x03\x04" and (b"xl/" in head or b"[Content_Types].xml" in head):
                what = "an Excel workbook (.xlsx); export it as CSV"
            raise InputFileError(f"is {what}, not a CSV or text file", path=display)
    if b"\x00" in head:
        sample = head[:4096]
        even_nuls, odd_nuls = sample[0::2].count(0), sample[1::2].count(0)
        half = len(sample) // 2
        # BOM-less UTF-16 of mostly-ASCII text has a NUL in every other byte.
        if odd_nuls > 0.8 * half and even_nuls < 0.05 * half:
            return "utf-16-le"
        if even_nuls > 0.8 * half and odd_nuls < 0.05 * half:
            return "utf-16-be"
        raise InputFileError("holds binary data, not a CSV or text file", path=display)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "gzip-compressed (unpack it first)"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file (.xls); export it as CSV"),
    (b"SQLite format 3", "an SQLite database"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


@dataclass(frozen=True, slots=True)
class Header(Generic[M]):
    """The header row found in a file: where it is, how its fields are separated, what it matched."""

    line: int  # 1-based
    delimiter: str
    fields: tuple[str, ...]  # as written
    names: tuple[str, ...]  # normalised (normalize_header)
    match: M | None  # what `detect` returned; None when no known layout matched

    @property
    def delimiter_label(self) -> str:
        return _DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))


def split_line(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
    except csv.Error:
        return [line]


def _delimiter_order(line: str) -> list[str]:
    counts = {d: line.count(d) for d in DELIMITERS}
    order = sorted((d for d in DELIMITERS if counts[d]), key=lambda d: -counts[d])
    return order or [","]


def find_header(file: ExportFile, detect: Callable[[Sequence[str]], M | None]) -> Header[M]:
    """The first line, among the first few hundred, that `detect` recognises as a header.

    Lines starting with '#' (GA4 metadata) are skipped; other lines that match nothing (Moz's
    metadata lines) too. Without any match, the first non-comment line is returned as the header
    with `match=None`, so the caller can name the columns it misses.
    """
    first: Header[M] | None = None
    for number, line in file.lines():
        if number > _HEADER_SCAN_LINES:
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for delimiter in _delimiter_order(line):
            fields = split_line(line, delimiter)
            names = tuple(normalize_header(f) for f in fields)
            match = detect(names)
            if match is not None:
                return Header(number, delimiter, tuple(fields), names, match)
            if first is None:
                first = Header(number, delimiter, tuple(fields), names, None)
    if first is None:
        raise InputFileError("holds no header row (only blank or '#' comment lines)", path=file.display)
    return first


def records(file: ExportFile, header: Header[M], *, stop_at_blank: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Data rows after `header` as (line number where the row starts, fields), streaming.

    Blank lines are skipped, or end the table when `stop_at_blank` (GA4 puts several tables in one
    file, separated by blank lines).
    """
    lines = file.lines()
    for number, _ in lines:
        if number == header.line:
            break
    position = {"line": header.line}

    def feed() -> Iterator[str]:
        for number, line in lines:
            position["line"] = number
            yield line

    reader = csv.reader(feed(), delimiter=header.delimiter, quotechar='"', doublequote=True)
    while True:
        start = position["line"] + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputFileError(f"is not valid CSV ({exc})", path=file.display, line=position["line"]) from None
        if not row or all(not cell.strip() for cell in row):
            if stop_at_blank:
                return
            continue
        yield start, row
