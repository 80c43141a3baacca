"""JSON that keeps Decimal numbers exact, both ways.

``json`` can read numbers as Decimal (``parse_float=Decimal``) but cannot
write a Decimal as a number; :func:`dumps` does. With ``sort_keys`` the text
is canonical: the same object always gives the same bytes, which is what the
payload hash of a raw row is computed over.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

_encode_str = json.encoder.py_encode_basestring  # keeps non-ASCII as is


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    parts: list[str] = []
    _write(value, parts, sort_keys)
    return "".join(parts)


def _write(value: Any, out: list[str], sort_keys: bool) -> None:
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a JSON number: {value}")
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        keys = sorted(value) if sort_keys else list(value)
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(_encode_str(str(key)))
            out.append(":")
            _write(value[key], out, sort_keys)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out, sort_keys)
        out.append("]")
    elif isinstance(value, float):
        raise TypeError("floats are not allowed here: money must stay Decimal")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def canonical(value: Any) -> str:
    return dumps(value, sort_keys=True)
