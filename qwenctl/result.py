"""Results are data: one JSON form for every result dataclass, one envelope, one typed reader.

Commands return frozen dataclasses; ``--json`` prints ``envelope(kind, result)``: ``{"schema": kind,
"version": SCHEMA_VERSION, ...fields}``, the same fields, nested dataclasses as objects, tuples as
lists, ``Absent(reason)`` as ``{"absent": reason}``. ``from_dict`` reads such a document back into its
type (detect's JSON into ``Hardware``, the bench history into ``BenchResult``). As pipx's result.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Union

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Absent:
    """A fact that could not be established, and the reason in plain words."""

    reason: str


def to_dict(obj: Any) -> Any:
    """JSON-ready form: dataclasses become dicts, Absent becomes {"absent": reason}."""
    if isinstance(obj, Absent):
        return {"absent": obj.reason}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(x) for x in obj]
    return obj


def envelope(kind: str, result: Any) -> dict[str, Any]:
    """The versioned JSON document of `result`: ``{"schema": kind, "version": SCHEMA_VERSION, ...fields}``."""
    return {"schema": kind, "version": SCHEMA_VERSION, **to_dict(result)}


def from_dict(tp: Any, value: Any, where: str) -> Any:
    """The typed value of type `tp` that ``to_dict`` made `value` from; ValueError naming the field
    (`where`, e.g. ``hardware.memory.total_bytes``) where the document does not fit."""
    import types
    import typing

    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if isinstance(value, dict) and set(value) == {"absent"} and Absent in options:
            return Absent(str(value["absent"]))
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option in (Absent, type(None)):
                continue
            try:
                return from_dict(option, value, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{where}: {value!r} does not fit {tp}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_dict(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(from_dict(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = from_dict(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing {f.name!r}")
        return typing.cast(Any, tp)(**kwargs)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp in (int, str, bool):
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            return value
    else:
        raise TypeError(f"{where}: no conversion for {tp}")  # a schema change this code missed
    raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
