"""One rule for every JSON file the package writes: valid JSON, a non-finite float as null.

Python's ``json`` writes a NaN as a bare ``NaN``, which JSON has not (``JSON.parse`` and
strict parsers refuse the file); a score that is undefined (a class absent from a split) is
written as ``null`` instead, and readers that expect a float turn it back (``float_or_nan``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any


def finite_or_null(data: Any) -> Any:
    """``data`` with every NaN and infinity, at any depth of dicts and lists, made None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_null(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_or_null(value) for value in data]
    return data


def json_text(
    data: Any,
    indent: int | None = None,
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """``json.dumps`` of ``data`` with non-finite floats as null; ``allow_nan=False`` makes
    anything that still is not JSON (a NaN made by ``default``) an error, not a bad file."""
    return json.dumps(
        finite_or_null(data),
        indent=indent,
        sort_keys=sort_keys,
        separators=separators,
        default=default,
        allow_nan=False,
    )


def float_or_nan(value: float | None) -> float:
    """A float read back from a file ``json_text`` wrote: null is the NaN it stood for."""
    return math.nan if value is None else float(value)
