"""Hypothesis strategies for hostile files: what real tools and attackers write.

A file is a list of rows, each either GOOD (known to be valid, so it must be kept) or hostile;
the rows are joined with random line ends (LF, CRLF, lone CR), maybe after a UTF-8 BOM. The
hostile rows reach every class issue 16 names: invalid UTF-8, lone surrogates, raw NUL bytes,
deep nesting, numbers too long for Python's int, very long lines, numbers/nulls/lists/objects where text belongs, duplicate keys,
content given as a list of parts, random bytes and random JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from hypothesis import strategies as st

BOM = b"\xef\xbb\xbf"
# Text that no reader may reject: letters, digits, spaces, punctuation that needs JSON escaping.
safe_text = st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), min_size=1, max_size=30).filter(
    str.strip
)
hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.just(""),
    st.just("   "),
    st.just("\x00"),
    st.just("\ud800"),
    st.just("a\udfffb"),
    st.just("x" * 70_000),
    st.text(max_size=20),
)
json_values = st.recursive(
    hostile_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


@dataclass
class Row:
    raw: bytes
    good: bool
    key: str = ""  # for good rows: the text that identifies the row among the kept ones


def _encode(value: object) -> bytes:
    # ensure_ascii keeps a lone surrogate as the JSON escape "\ud800", as exporters write it.
    return json.dumps(value, ensure_ascii=True).encode()


def _mutate(template: dict, path: list, value: object) -> dict:
    """`template` with the item at `path` (keys/indexes) replaced by `value`."""
    out = json.loads(json.dumps(template))
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def hostile_rows(template_for, paths: list[list]) -> st.SearchStrategy[bytes]:
    """Hostile variants of a valid row: a field replaced by a hostile value, deep nesting, raw
    bytes, a duplicate key, a long line, invalid UTF-8 or a raw NUL inside a valid row."""
    base = st.builds(template_for, safe_text, safe_text)
    mutated = st.builds(lambda t, p, v: _encode(_mutate(t, p, v)), base, st.sampled_from(paths), json_values)
    deep = st.builds(
        lambda n, open_, close: (open_ * n + close * n).encode(), st.integers(1, 3000), st.just("["), st.just("]")
    )
    deep_field = st.builds(
        lambda t, p, n: _encode(_mutate(t, p, 0)).replace(b"0", b"[" * n + b"]" * n, 1),
        base,
        st.sampled_from(paths),
        st.integers(60, 2000),
    )
    duplicate = st.builds(lambda t: _encode(t)[:-1] + b", " + _encode(t)[1:], base)
    broken = st.builds(
        lambda t, bad: _encode(t).replace(b'"', b'"' + bad, 3)[:-1] + b"}",
        base,
        st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b"\x1b"]),
    )
    noise = st.binary(max_size=60)
    huge_number = st.builds(
        lambda t, p, n: _encode(_mutate(t, p, 0)).replace(b"0", b"7" * n, 1),
        base,
        st.sampled_from(paths),
        st.integers(4200, 6000),
    )  # Python's int limit is 4300 digits
    return st.one_of(mutated, deep, deep_field, duplicate, broken, noise, huge_number, st.builds(_encode, json_values))


def files(good, bad) -> st.SearchStrategy[tuple[bytes, list[Row]]]:
    """(file bytes, rows): good and hostile rows in random order with random line ends."""
    row = st.one_of(
        st.builds(lambda g: Row(g[0], True, g[1]), good),
        st.builds(lambda b: Row(re.sub(rb"[\r\n]", b" ", b), False), bad),
    )
    return st.builds(
        _join,
        st.lists(row, min_size=1, max_size=8),
        st.booleans(),
        st.sampled_from([b"\n", b"\r\n", b"\r"]),
        st.booleans(),
    )


def _join(rows: list[Row], bom: bool, end: bytes, trailing: bool) -> tuple[bytes, list[Row]]:
    data = end.join(r.raw for r in rows) + (end if trailing else b"")
    return (BOM if bom else b"") + data, rows


def conversation_row(user: str, reply: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


CONVERSATION_PATHS = [
    ["messages"],
    ["messages", 0],
    ["messages", 0, "content"],
    ["messages", 0, "role"],
    ["messages", 1, "content"],
    ["messages", 1, "tool_calls"],
    ["messages", 1, "name"],
    ["messages", 1, "weight"],
    ["id"],
    ["meta"],
]


def good_conversation() -> st.SearchStrategy[tuple[bytes, str]]:
    """A valid chat row in one of the three formats, content maybe as a list of text parts."""

    def build(user: str, reply: str, kind: int) -> tuple[bytes, str]:
        if kind == 0:
            return _encode(conversation_row(user, reply)), reply
        if kind == 1:
            row = {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": user}]},
                    {"role": "assistant", "content": reply},
                ]
            }
            return _encode(row), reply
        return json.dumps(conversation_row(user, reply), ensure_ascii=False).encode(), reply

    return st.builds(build, safe_text, safe_text, st.integers(0, 2))
