"""Go's view of JSON, for answering exactly as OSCAR's Go server does.

OSCAR decodes request bodies with ``encoding/json`` into Go structs (``pkg/types``), stores a service
as YAML with goccy/go-yaml v1.9.8 in a ConfigMap (``pkg/backends/k8s.go`` createServiceConfigMap,
getServiceFromConfigMap) and answers with ``encoding/json`` again. What a client meets follows from
three rules, reproduced here as pure functions over a small description of the Go types:

* :func:`decode`: ``json.Unmarshal`` into a zero value. Unknown keys are dropped, keys match
  case-insensitively, ``null`` leaves the zero value, and a JSON value of the wrong type is an error
  worded as Go words it (``json: cannot unmarshal number into Go struct field Service.cpu of type
  string``).
* :func:`yaml_roundtrip`: what the ConfigMap gives back. goccy writes a nil map as ``{}`` and a nil
  slice as ``[]`` (so a real GET never shows ``null`` for them), drops ``yaml:"-"`` fields, trims the
  spaces around one-line strings, and cannot read back a value written as ``-`` or ``- x``.
* :func:`encode` / :func:`dumps`: ``json.Marshal``: struct fields in declaration order, ``omitempty``
  drops zero values (never a struct), map keys sorted, compact, ``<``, ``>`` and ``&`` escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Bool",
    "Field",
    "GoDecodeError",
    "GoType",
    "Int",
    "ListOf",
    "MapOf",
    "Ptr",
    "Str",
    "Struct",
    "UnreadableFDL",
    "decode",
    "dumps",
    "encode",
    "yaml_roundtrip",
    "zero",
]


class GoDecodeError(ValueError):
    """A JSON value does not fit the Go type (the message is Go's own wording)."""


class UnreadableFDL(ValueError):
    """goccy/go-yaml v1.9.8 wrote a value it cannot read back (``-`` or ``- x``)."""


@dataclass(frozen=True)
class _Scalar:
    go: str  # the Go type's name in error messages

    def __repr__(self) -> str:
        return self.go


Str = _Scalar("string")
Bool = _Scalar("bool")
Int = _Scalar("int")
Int32 = _Scalar("int32")
Uint = _Scalar("uint")


@dataclass(frozen=True)
class MapOf:
    """``map[string]V``."""

    value: GoType

    @property
    def go(self) -> str:
        return f"map[string]{self.value.go}"


@dataclass(frozen=True)
class ListOf:
    """``[]V``."""

    item: GoType

    @property
    def go(self) -> str:
        return f"[]{self.item.go}"


@dataclass(frozen=True)
class Ptr:
    """``*T``: absent (``nil``) unless the JSON gives an object."""

    target: Struct

    @property
    def go(self) -> str:
        return f"*types.{self.target.name}"


@dataclass(frozen=True)
class Field:
    """One struct field: its JSON key, Go type and tags."""

    key: str
    type: GoType
    omitempty: bool = False
    yaml_skip: bool = False  # yaml:"-": not stored in the ConfigMap


@dataclass(frozen=True)
class Struct:
    """A Go struct, fields in declaration order (the order ``json.Marshal`` writes them)."""

    name: str
    fields: tuple[Field, ...] = field(default=())

    @property
    def go(self) -> str:
        return f"types.{self.name}"

    def field(self, key: str) -> Field | None:
        """The field a JSON key binds to: exact match first, then case-insensitive (as encoding/json)."""
        for f in self.fields:
            if f.key == key:
                return f
        lowered = key.lower()
        for f in self.fields:
            if f.key.lower() == lowered:
                return f
        return None


GoType = _Scalar | MapOf | ListOf | Ptr | Struct

_INTS = {"int": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1), "uint": (0, 2**64 - 1)}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def zero(gotype: GoType) -> Any:
    """Go's zero value: ``""``, ``False``, ``0``, ``None`` (nil map, slice or pointer), or a zero struct."""
    if isinstance(gotype, _Scalar):
        return {"string": "", "bool": False}.get(gotype.go, 0)
    if isinstance(gotype, Struct):
        return {f.key: zero(f.type) for f in gotype.fields}
    return None


@dataclass
class _Ctx:
    struct: str = "Service"
    path: tuple[str, ...] = ()

    def error(self, value: Any, gotype: GoType, number: str = "") -> GoDecodeError:
        kind = _json_kind(value) + (f" {number}" if number else "")
        where = ".".join(self.path)
        target = f"Go struct field {self.struct}.{where}" if where else "Go value"
        return GoDecodeError(f"json: cannot unmarshal {kind} into {target} of type {gotype.go}")


def _decode(gotype: GoType, value: Any, ctx: _Ctx) -> Any:
    if value is None:
        return zero(gotype)  # JSON null leaves the zero value
    if isinstance(gotype, _Scalar):
        if gotype is Str:
            if not isinstance(value, str):
                raise ctx.error(value, gotype)
            return value
        if gotype is Bool:
            if not isinstance(value, bool):
                raise ctx.error(value, gotype)
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(value, gotype)
        low, high = _INTS[gotype.go]
        if (isinstance(value, float) and not value.is_integer()) or not low <= value <= high:
            raise ctx.error(value, gotype, number=json.dumps(value))
        return int(value)
    if isinstance(gotype, MapOf):
        if not isinstance(value, dict):
            raise ctx.error(value, gotype)
        return {str(k): _decode(gotype.value, v, ctx) for k, v in value.items()}  # Go names no map keys
    if isinstance(gotype, ListOf):
        if not isinstance(value, list):
            raise ctx.error(value, gotype)
        return [_decode(gotype.item, v, ctx) for v in value]
    if isinstance(gotype, Ptr):
        return _decode(gotype.target, value, ctx)
    if not isinstance(value, dict):
        raise ctx.error(value, gotype)
    out = zero(gotype)
    for key, item in value.items():
        f = gotype.field(str(key))
        if f is not None:
            inner = _Ctx(gotype.name, (*ctx.path, f.key))
            out[f.key] = _decode(f.type, item, inner)
    return out


def decode(gotype: Struct, value: Any) -> dict[str, Any]:
    """``json.Unmarshal(body, &v)`` for a struct type; returns every field (zero-filled).

    Raises:
        GoDecodeError: a value of the wrong JSON type, worded as encoding/json words it.
    """
    if not isinstance(value, dict):
        raise GoDecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type {gotype.go}")
    result: dict[str, Any] = _decode(gotype, value, _Ctx(gotype.name))
    return result


def _is_zero(gotype: GoType, value: Any) -> bool:
    if isinstance(gotype, Struct):
        return False  # omitempty never drops a struct
    return value in (None, "", False, 0) or (isinstance(value, (list, dict)) and not value)


def encode(gotype: GoType, value: Any) -> Any:
    """``json.Marshal``'s tree: declaration order, omitempty applied, nil as ``None`` (JSON null)."""
    if isinstance(gotype, Struct):
        value = value if isinstance(value, dict) else {}
        out: dict[str, Any] = {}
        for f in gotype.fields:
            item = value.get(f.key, zero(f.type))
            if f.omitempty and _is_zero(f.type, item):
                continue
            out[f.key] = encode(f.type, item)
        return out
    if value is None:
        return None
    if isinstance(gotype, Ptr):
        return encode(gotype.target, value)
    if isinstance(gotype, MapOf):
        return {k: encode(gotype.value, value[k]) for k in sorted(value)}
    if isinstance(gotype, ListOf):
        return [encode(gotype.item, v) for v in value]
    return value


_DASH = re.compile(r"^- |^-$")


def _yaml_string(value: str, where: str) -> str:
    if "\n" in value:
        return value  # block scalars keep their text
    if _DASH.match(value.strip(" ")):
        raise UnreadableFDL(f"the value of {where} ({value!r}) is written so that it cannot be read back")
    return value.strip(" ")


def yaml_roundtrip(gotype: GoType, value: Any, where: str = "") -> Any:
    """What reading the stored FDL back gives (goccy/go-yaml v1.9.8, see the module docstring).

    Raises:
        UnreadableFDL: a string value is ``-`` or starts with ``- `` (goccy writes it unquoted).
    """
    if isinstance(gotype, Struct):
        value = value if isinstance(value, dict) else {}
        out: dict[str, Any] = {}
        for f in gotype.fields:
            item = value.get(f.key, zero(f.type))
            if f.yaml_skip or (f.omitempty and _is_zero(f.type, item)):
                out[f.key] = zero(f.type)
            else:
                out[f.key] = yaml_roundtrip(f.type, item, f"{where}.{f.key}".lstrip("."))
        return out
    if isinstance(gotype, Ptr):
        return None if value is None else yaml_roundtrip(gotype.target, value, where)
    if isinstance(gotype, MapOf):
        return {k: yaml_roundtrip(gotype.value, v, f"{where}.{k}") for k, v in (value or {}).items()}
    if isinstance(gotype, ListOf):
        return [yaml_roundtrip(gotype.item, v, where) for v in (value or [])]
    if gotype is Str and isinstance(value, str):
        return _yaml_string(value, where)
    return value


_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                             "\u2029": "\\u2029"})


def dumps(tree: Any) -> bytes:
    """Serialise as ``encoding/json`` does: compact, UTF-8, HTML characters escaped, key order kept."""
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False).translate(_GO_ESCAPES).encode()


def decoded_keys(gotype: Struct, raw: Mapping[str, Any]) -> set[str]:
    """The JSON keys of ``raw`` that bind to a field of ``gotype`` (the others are dropped by Go)."""
    return {k for k in raw if gotype.field(str(k)) is not None}
