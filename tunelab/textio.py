"""Hostile input, decoded once: the file checks, line splitting and JSON/YAML parsing every reader shares.

What each class of bad input gets (the README's "What bad input gets" lists the same):
- a path that is missing, a directory, or unreadable: InputFileError, one line naming the path;
- a UTF-8 byte-order mark: removed (Windows editors and Excel write one), the first row is read;
- CRLF or lone CR line ends: read as line ends, as Python's universal newlines do;
- invalid UTF-8, or a lone surrogate escape ("\\ud800"): that row is rejected naming the field
  (a lone surrogate cannot be encoded again, so tokenizers and writers would crash on it later);
- JSON nested deeper than MAX_DEPTH, or too deep for the parser: that row is rejected;
- a duplicate key in one JSON object or YAML mapping: rejected (which value was meant is unknown);
- NUL bytes: raw ones make a JSON line invalid (rejected); escaped ones (\\u0000) are text;
- a number of more than 4300 digits (Python's limit for int conversion): that row is rejected.
JSONL is streamed line by line, so memory stays bounded by the longest line, not the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

BOM = b"\xef\xbb\xbf"
MAX_DEPTH = 64  # real chat rows nest 5-6 levels; deeper is an attack or a broken exporter
RAW_SHOWN = 2000  # characters of a rejected row kept in the rejected file


class InputFileError(ValueError):
    """The whole file cannot be read (missing, a directory, unreadable, not text): one line, the path first."""


class RowError(ValueError):
    """A bad row: `field` is a path like messages[2].role."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_file(path: str | Path) -> Path:
    """`path` as a Path when it is a readable regular file; InputFileError otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory; give the data file inside it")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return path


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line end) for every line, streamed; a leading BOM removed.
    A lone CR ends a line too (a raw CR cannot occur inside a JSON string, so this splits no row)."""
    path = check_file(path)
    number = 0
    with path.open("rb") as handle:
        for chunk in handle:
            if number == 0 and chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
            chunk = chunk.rstrip(b"\n").rstrip(b"\r")
            for piece in chunk.split(b"\r") if b"\r" in chunk else (chunk,):
                number += 1
                yield number, piece


def shown(raw: bytes | str) -> str:
    """A rejected row as kept in the rejected file: decoded leniently, cut to RAW_SHOWN characters."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates -> '?'
    return text[:RAW_SHOWN]


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("(row)", f"invalid UTF-8 at byte {exc.start}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RowError(key, "duplicate key in one object")
        out[key] = value
    return out


def bad_value(value: Any, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(field, reason) for the first string holding a lone surrogate, or nesting deeper than
    max_depth; None when the value is safe to pass on. Iterative, so depth cannot crash it."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > max_depth:
            return where or "(row)", f"nested deeper than {max_depth} levels"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(item[exc.start])
                what = "invalid UTF-8" if 0xDC80 <= code <= 0xDCFF else "a lone surrogate"
                return where or "(row)", f"holds {what} (\\u{code:04x} at character {exc.start})"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and bad_value(key, 0):
                    return where or "(row)", "a key holds invalid UTF-8 or a lone surrogate"
                stack.append((sub, f"{where}.{key}" if where else str(key), depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(item))
    return None


def check_value(value: Any) -> Any:
    problem = bad_value(value)
    if problem:
        raise RowError(*problem)
    return value


def loads_row(raw: bytes | str) -> Any:
    """One JSON row -> its value, or RowError naming the field; never another exception."""
    text = decode(raw) if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise RowError("(row)", f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowError("(row)", "JSON nested too deeply to parse") from None
    except RowError:
        raise
    except ValueError as exc:  # a number of more than 4300 digits (Python's int conversion limit)
        raise RowError("(row)", f"invalid JSON: {exc}") from None
    return check_value(value)


# A JSON string, or one structural character. Splitting a JSON list into its items with this
# (instead of json.loads on the whole file) lets one bad item be rejected and the others kept;
# the json module has no item-by-item API, and ijson stops at the first error.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.S)


def split_json_list(data: bytes) -> list[bytes] | None:
    """The raw items of a top-level JSON list, or None when `data` is not one well-bracketed list."""
    depth, start, items = 0, 0, []
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token[:1] == b'"':
            continue
        if token in (b"[", b"{"):
            if depth == 0 and (token != b"[" or data[: match.start()].strip()):
                return None
            depth += 1
            if depth == 1:
                start = match.end()
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                last = data[start : match.start()]
                if last.strip() or items:
                    items.append(last)
                return items if not data[match.end() :].strip() else None
            if depth < 0:
                return None
        elif depth == 1:  # a comma between items
            items.append(data[start : match.start()])
            start = match.end()
    return None


def read_text(path: str | Path) -> str:
    """A whole text file (config, prompt): BOM removed; InputFileError naming the line of bad UTF-8."""
    data = check_file(path).read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputFileError(f"{path}:{line}: invalid UTF-8 (byte {exc.start}); save the file as UTF-8") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str, error: type[ValueError] = InputFileError) -> Any:
    """YAML text -> value; every failure (syntax, duplicate key, depth, lone surrogate) as `error`."""
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise error(f"{source}: {exc}") from None
    problem = bad_value(value)
    if problem:
        raise error(f"{source}: {problem[0]}: {problem[1]}")
    return value
