"""PHP-style bracket keys of a form-encoded body (`leads[status][0][id]=…`) as nested JSON: amoCRM and Bitrix24
both post their webhooks so (shared/docs/crm.md §0.1). A pure function; one body, one nested dict.

`a[b][0][c]=1&a[b][1][c]=2` becomes `{"a": {"b": [{"c": "1"}, {"c": "2"}]}}`: a level whose keys are all
decimal indexes becomes a list in index order (amoCRM numbers a batch 0, 1, …; a gap is kept in order, not
filled). Values stay text, as the sender wrote them. A key that is both a value and a parent (`a=1&a[b]=2`)
keeps the parent: the deeper structure is the one a mapping reads.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FormError", "unflatten", "parse_form"]

MAX_DEPTH = 16  # deeper than any CRM's body: a key nested past this is refused, not recursed into
MAX_FIELDS = 10_000
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """The body is not a form this door reads; the message says why."""


def parse_form(raw: bytes) -> dict[str, Any]:
    """A form-encoded body as nested JSON (FormError when it is not UTF-8 text or nests too deep)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormError(f"the body is not UTF-8 text: {error.reason} at byte {error.start}") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS)
    except ValueError as error:  # more fields than max_num_fields
        raise FormError(f"the form could not be read: {error}") from None
    return unflatten(pairs)


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in pairs:
        path = _path(key)
        node = tree
        for index, part in enumerate(path):
            if part == "":  # `c[]=x&c[]=y`: the next index of this level
                path[index] = part = str(len(node))
            if index == len(path) - 1:
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(path[-1]), dict):  # a parent wins over a plain value
            node[path[-1]] = value
    return _lists(tree)


def _path(key: str) -> list[str]:
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    parts = [head]
    position = len(head)
    for match in _PART.finditer(key, position):
        if match.start() != position:
            break  # text between brackets (`a[b]x[c]`): PHP stops reading there too
        parts.append(match.group(1))
        position = match.end()
    if len(parts) == 1:
        return [key]  # `a[` with no closing bracket: a plain key
    if len(parts) > MAX_DEPTH:
        raise FormError(f"a key nests deeper than {MAX_DEPTH} levels")
    return parts


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isascii() and key.isdigit() and len(key) < 10 for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted
