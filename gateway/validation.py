"""What request values must be: JSON objects' typed fields, text, phone numbers, list names, ids, and CSV uploads
(read) and exports (written). Reading the request itself is gateway.api.bodies'."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import re
from typing import Any, AsyncIterator

import phonenumbers

from gateway.errors import BadRequest, Unprocessable


def not_text(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) that cannot be stored or sent as text: a lone surrogate
    (``"\\ud800"``) cannot be encoded, a NUL is refused by PostgreSQL and carriers. None when all are text."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not (item.isascii() or _encodes(item)):
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                if "\x00" in key or not (key.isascii() or _encodes(key)):
                    return name.encode("utf-8", "backslashreplace").decode()
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: Any, path: str = "") -> None:
    """422 invalid_field naming the first string in ``value`` that is not text (see not_text)."""
    where = not_text(value, path)
    if where is not None:
        raise Unprocessable(f"The field '{where}' holds a NUL or a lone surrogate, which is not text.",
                            code="invalid_field", details={"field": where})


class Fields:
    """Typed access to a JSON object's fields, with errors naming the field."""

    def __init__(self, data: dict[str, Any], allowed: set[str]):
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(unknown)}.", code="unknown_field",
                             details={"fields": unknown})
        self.data = data

    def not_null(self, *names: str) -> None:
        """These fields, when present, must have a value (null does not mean false, zero or the default)."""
        for name in names:
            if name in self.data and self.data[name] is None:
                raise Unprocessable(f"The field '{name}' must not be null.", code="invalid_field",
                                    details={"field": name})

    def text(self, name: str, *, required: bool = False, max_length: int | None = None,
             allow_empty: bool = True, empty_code: str = "invalid_field") -> str | None:
        """A string field; with ``allow_empty=False``, one of only whitespace is refused with ``empty_code``."""
        value = self.data.get(name)
        if value is None:
            if required:
                raise Unprocessable(f"The field '{name}' is required.", code="missing_field",
                                    details={"field": name})
            return None
        if not isinstance(value, str):
            raise Unprocessable(f"The field '{name}' must be a string.", code="invalid_field",
                                details={"field": name})
        if not allow_empty and not value.strip():
            raise Unprocessable(f"The field '{name}' must not be empty.", code=empty_code,
                                details={"field": name})
        if max_length is not None and len(value) > max_length:
            raise Unprocessable(f"The field '{name}' is longer than {max_length} characters.",
                                code="invalid_field", details={"field": name})
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 63) <= value < 1 << 63:
            raise Unprocessable(f"The field '{name}' must be a (64-bit) integer.", code="invalid_field",
                                details={"field": name})
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise Unprocessable(f"The field '{name}' must be between {minimum} and {maximum}.",
                                code="invalid_field", details={"field": name})
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise Unprocessable(f"The field '{name}' must be true or false.", code="invalid_field",
                                details={"field": name})
        return value

    def url(self, name: str) -> str | None:
        value = self.text(name, max_length=2000)
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or " " in value:
            raise Unprocessable(f"The field '{name}' must be an http(s) URL.", code="invalid_field",
                                details={"field": name})
        return value


# what a written phone number may hold: digits (any script: phonenumbers reads them), '+', spaces and the
# punctuation of national formats (dashes and brackets in their Unicode forms too, '/' and '.'). Not letters:
# phonenumbers turns them into keypad digits ("+1415555abcd" would text +14155552223) and reads "ext."/";ext="/
# "x"/"#"/"," as an extension, which an SMS or a call cannot dial; nor what it drops unseen ("*", "~", "!").
_PHONE_CHARACTERS = re.compile("[\\d\\s+\uff0b()\\[\\].\\-/\u2010-\u2015\u2212\u30fc\uff0d\uff08\uff09\uff3b\uff3d"
                               "\uff0f\u00ad\u200b\u2060]+")


# about 200 bytes an entry: 16,384 are some 3 MB, filled after as many distinct recipients (65,536 held 17 MB, a
# resident memory that kept growing for the first 130 s of a 500 msg/s soak to different people)
PHONE_CACHE_SIZE = 16384


@functools.lru_cache(maxsize=PHONE_CACHE_SIZE)
def _parse_phone(value: str, default_region: str) -> tuple[str, str | None] | None:
    """(E.164, region), or None for what is no valid phone number. Cached: customers text the same people."""
    if not _PHONE_CHARACTERS.fullmatch(value):
        return None
    try:
        parsed = phonenumbers.parse(value, None if value.strip().startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return None
    if parsed.extension:
        return None
    # what is_valid_number does, with the region looked up once instead of twice
    region = phonenumbers.region_code_for_number(parsed)
    if not phonenumbers.is_valid_number_for_region(parsed, region):
        return None
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return value if value == formatted else formatted, region  # the cache keeps one string, not two alike


def parse_phone(value: str, *, field: str = "to", default_region: str = "US",
                cached: bool = True) -> tuple[str, str | None]:
    """(E.164, region) of a phone number, or raise 422 invalid_destination / invalid_from / invalid_phone. An import
    passes cached=False: its 100,000 numbers, each seen once, would evict the ones customers text and leave some
    200,000 objects for every full garbage collection to walk (a pause of 100-400 ms for every request)."""
    parse = _parse_phone if cached else _parse_phone.__wrapped__
    found = parse(value, default_region) if isinstance(value, str) and len(value) <= 64 else None
    if found is None:
        code = {"to": "invalid_destination", "from": "invalid_from"}.get(field, "invalid_phone")
        shown = value if len(str(value)) <= 40 else f"{str(value)[:40]}..."
        raise Unprocessable(f"'{shown}' is not a valid phone number.", code=code, details={"field": field})
    return found


def e164(value: str, *, field: str = "to", default_region: str = "US", cached: bool = True) -> str:
    """Normalize a phone number to E.164, or raise 422 invalid_destination / invalid_from."""
    return parse_phone(value, field=field, default_region=default_region, cached=cached)[0]


def origination(value: str, *, default_region: str = "US", field: str = "from") -> str:
    """A sending number as stored: a short code's digits, or E.164."""
    compact = value.strip()
    if compact.isascii() and compact.isdigit() and 3 <= len(compact) <= 8:
        return compact
    return e164(compact, field=field, default_region=default_region)


def region_of(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None


IMPORT_CHUNK = 500  # rows written in one short transaction (~10 ms): others get the database in between
IMPORT_YIELD = 50  # rows parsed (phone numbers: about 60 us each) before other requests get the event loop


async def csv_chunks(raw: bytes, size: int = IMPORT_CHUNK) -> AsyncIterator[list[tuple[int, list[str]]]]:
    """The rows of an uploaded CSV that are not blank (UTF-8, a BOM allowed), whatever its line endings (a lone CR
    too), ``size`` at a time, each with the line of the file it starts on (a quoted cell may span lines); 400
    invalid_csv when it is
    empty, not UTF-8 or not CSV, before the first chunk. The file is read twice: once to find such errors, keeping
    no rows (a 20 MiB upload held as lists of cells would take some 300 MB), then a chunk at a time; other
    requests get the event loop every 2,000 rows."""
    if not raw.strip():
        raise BadRequest("The request has no CSV.", code="invalid_csv")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise BadRequest(f"The CSV must be UTF-8 (line {line} is not).", code="invalid_csv") from None
    for keep in (False, True):
        reader = csv.reader(io.StringIO(text, newline=""))
        chunk: list[tuple[int, list[str]]] = []
        line = 1
        try:
            for count, row in enumerate(reader, start=1):
                if keep and "".join(row).strip():
                    chunk.append((line, row))
                    if len(chunk) == size:
                        yield chunk
                        chunk = []
                line = reader.line_num + 1
                if count % 2000 == 0:
                    await asyncio.sleep(0)
        except csv.Error as exc:
            raise BadRequest(f"The CSV cannot be read at line {line}: {exc}.", code="invalid_csv") from None
    if chunk:
        yield chunk


async def paced(rows: list[tuple[int, list[str]]]) -> AsyncIterator[tuple[int, list[str]]]:
    """A chunk's rows, letting other requests have the event loop every IMPORT_YIELD of them."""
    for i, row in enumerate(rows):
        if i % IMPORT_YIELD == 0:
            await asyncio.sleep(0)
        yield row


LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def valid_list_name(value: str | None, *, field: str = "list",
                    default: str | None = "default") -> str | None:
    """An opt-out list's name: 1 to 64 ASCII letters, digits, '_', '-' or '.', starting with a letter or digit
    (so no formula, markup or blank ever names one); ``default`` when none is given, else 422 invalid_list_name."""
    if value is None:
        return default
    if not isinstance(value, str) or not LIST_NAME.fullmatch(value):
        raise Unprocessable(f"The field '{field}' must be 1 to 64 letters, digits, '_', '-' or '.', starting with a "
                            "letter or digit.", code="invalid_list_name", details={"field": field})
    return value


E164 = re.compile(r"\+[1-9][0-9]{1,14}")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str | None) -> str:
    """A cell for a CSV export that a spreadsheet shows as text, never runs (OWASP "CSV injection"): a cell that
    starts with = + - @ tab or CR gets a leading '. An E.164 number (+ and digits) is data, not a formula, and
    stays as it is so that the export can be imported again."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) and not E164.fullmatch(text) else text


def row_id(value: str) -> int | None:
    """A database id from a path or query (a positive 64-bit integer), or None for anything else."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 19:  # "¹".isdigit(), but int("¹") fails
        return None
    number = int(value)
    return number if 0 < number < 1 << 63 else None


