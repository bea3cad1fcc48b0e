"""How each kind of model class becomes event data, is read back, and is described.

Four kinds, one interface (:class:`ModelKind`): a stdlib ``@dataclass`` or
``TypedDict`` (checked by eventbus's own validator, no dependency), a pydantic v2
``BaseModel`` (extra ``pydantic``) and a ``msgspec.Struct`` (extra ``msgspec``).
Data on the wire is JSON: ``to_data`` gives JSON values, ``from_data`` checks
them and builds the model, raising :class:`ModelErrors` with every problem found
(a field path and a message each).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import sys
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["ModelErrors", "ModelKind", "kind_of"]

Problems = list[tuple[str, str]]


class ModelErrors(Exception):
    """Data that does not fit a model: ``problems`` is a list of ``(path, message)``."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p or '$'}: {m}" for p, m in problems))


class ModelKind:
    """One kind of model class (dataclass, TypedDict, pydantic, msgspec)."""

    name = "model"

    def to_data(self, obj: Any) -> Any:
        raise NotImplementedError

    def from_data(self, cls: Any, data: Any, reject_unknown: bool) -> Any:
        raise NotImplementedError

    def schema(self, cls: Any) -> dict[str, Any]:
        raise NotImplementedError

    def fields(self, cls: Any) -> set[str]:
        raise NotImplementedError

    def loader(self, cls: Any, reject_unknown: bool) -> Callable[[Any], Any]:
        """The fastest ``data -> model`` function for ``cls`` (raises :class:`ModelErrors`)."""
        return lambda data: self.from_data(cls, data, reject_unknown)

    def check(self, cls: Any, obj: Any) -> Any:
        """The data of ``obj``, checked against its own class (for publishing)."""
        data = self.to_data(obj)
        self.from_data(cls, data, False)
        return data


# -- the stdlib kinds: our own validator ---------------------------------------------------
_JSON_NUMBER = (int, float)


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        type(None): "null",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


_HINTS: dict[Any, dict[str, Any]] = {}


def _hints(cls: Any, localns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``cls``'s resolved field types, worked out once per class (and for its nested
    record classes, when it is bound: :func:`resolve`)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, localns=dict(localns or {}))
    return hints


def resolve(cls: Any, localns: Mapping[str, Any] | None) -> None:
    """Resolve the field types of record class ``cls`` and the record classes it nests,
    with ``localns`` for names local to the function that defined them."""
    seen: set[Any] = set()

    def walk(kind: Any) -> None:
        if kind in seen:
            return
        if dataclasses.is_dataclass(kind) or _is_typeddict(kind):
            seen.add(kind)
            for hint in _hints(kind, localns).values():
                walk(hint)
        for arg in get_args(kind):
            walk(arg)

    walk(cls)


def _is_typeddict(cls: Any) -> bool:
    return isinstance(cls, type) and typing.is_typeddict(cls)


def _dump(value: Any) -> Any:
    """JSON values for a dataclass / TypedDict value tree."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_dump(v) for v in value]
    if isinstance(value, enum.Enum):
        return _dump(value.value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    return value


def _load(kind: Any, value: Any, path: str, problems: Problems, reject_unknown: bool) -> Any:
    """``value`` checked against the type ``kind`` (problems appended), converted."""
    origin = get_origin(kind)
    if kind is Any or kind is object:
        return value
    if origin is Union or (sys.version_info >= (3, 10) and isinstance(kind, types.UnionType)):
        args = get_args(kind)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial: Problems = []
            out = _load(arg, value, path, trial, reject_unknown)
            if not trial:
                return out
        names = " or ".join(_describe(a) for a in args)
        problems.append((path, f"expected {names}, got {_type_name(value)}"))
        return value
    if origin is Literal:
        if value not in get_args(kind):
            choices = ", ".join(repr(a) for a in get_args(kind))
            problems.append((path, f"expected one of {choices}, got {value!r}"))
        return value
    if kind is type(None) or kind is None:
        if value is not None:
            problems.append((path, f"expected null, got {_type_name(value)}"))
        return value
    if kind is bool:
        if not isinstance(value, bool):
            problems.append((path, f"expected boolean, got {_type_name(value)}"))
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((path, f"expected integer, got {_type_name(value)}"))
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, _JSON_NUMBER):
            problems.append((path, f"expected number, got {_type_name(value)}"))
            return value
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            problems.append((path, f"expected string, got {_type_name(value)}"))
        return value
    if kind in (dt.datetime, dt.date, uuid.UUID, decimal.Decimal):
        return _load_text_type(kind, value, path, problems)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in kind)
            problems.append((path, f"expected one of {choices}, got {value!r}"))
            return value
    if origin in (list, tuple, set, frozenset, Sequence) or kind in (list, tuple):
        if not isinstance(value, list):
            problems.append((path, f"expected array, got {_type_name(value)}"))
            return value
        args = get_args(kind)
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            if len(value) != len(args):
                problems.append((path, f"expected {len(args)} items, got {len(value)}"))
                return value
            items = [
                _load(a, v, f"{path}[{i}]", problems, reject_unknown)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            ]
        else:
            item = args[0] if args else Any
            items = [
                _load(item, v, f"{path}[{i}]", problems, reject_unknown)
                for i, v in enumerate(value)
            ]
        return (origin or kind)(items) if origin in (tuple, set, frozenset) else items
    if origin in (dict, Mapping) or kind is dict:
        if not isinstance(value, dict):
            problems.append((path, f"expected object, got {_type_name(value)}"))
            return value
        args = get_args(kind)
        item = args[1] if len(args) == 2 else Any
        return {
            k: _load(item, v, f"{path}.{k}", problems, reject_unknown) for k, v in value.items()
        }
    if dataclasses.is_dataclass(kind) or _is_typeddict(kind):
        return _load_record(kind, value, path, problems, reject_unknown)
    problems.append((path, f"cannot check values of type {kind!r}"))
    return value


def _load_text_type(kind: Any, value: Any, path: str, problems: Problems) -> Any:
    if kind is decimal.Decimal and isinstance(value, _JSON_NUMBER) and not isinstance(value, bool):
        return decimal.Decimal(str(value))
    if not isinstance(value, str):
        problems.append((path, f"expected string ({kind.__name__}), got {_type_name(value)}"))
        return value
    try:
        if kind is dt.datetime:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if kind is dt.date:
            return dt.date.fromisoformat(value)
        return kind(value)
    except (ValueError, decimal.InvalidOperation):
        problems.append((path, f"expected {kind.__name__}, got {value!r}"))
        return value


def _required(cls: Any) -> set[str]:
    if _is_typeddict(cls):
        return set(cls.__required_keys__)
    missing = dataclasses.MISSING
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is missing and f.default_factory is missing
    }


def _load_record(cls: Any, value: Any, path: str, problems: Problems, reject_unknown: bool) -> Any:
    if not isinstance(value, dict):
        problems.append((path, f"expected object, got {_type_name(value)}"))
        return value
    hints = _hints(cls)
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
    else:
        names = set(hints)
    out: dict[str, Any] = {}
    for name in sorted(_required(cls) - value.keys()):
        problems.append((f"{path}.{name}", "field required"))
    for key, item in value.items():
        if key not in names:
            if reject_unknown:
                problems.append((f"{path}.{key}", "unknown field"))
            continue
        out[key] = _load(hints[key], item, f"{path}.{key}", problems, reject_unknown)
    if problems:
        return value
    make: Any = cls
    return make(**out) if dataclasses.is_dataclass(cls) else out


def _describe(kind: Any) -> str:
    if kind is type(None):
        return "null"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def _schema_of(kind: Any) -> dict[str, Any]:
    """JSON Schema (2020-12) of a type the validator checks."""
    origin = get_origin(kind)
    if kind is Any or kind is object:
        return {}
    if origin is Union or (sys.version_info >= (3, 10) and isinstance(kind, types.UnionType)):
        return {"anyOf": [_schema_of(a) for a in get_args(kind)]}
    if origin is Literal:
        return {"enum": list(get_args(kind))}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if kind in simple:
        return {"type": simple[kind]}
    formats = {dt.datetime: "date-time", dt.date: "date", uuid.UUID: "uuid"}
    if kind in formats:
        return {"type": "string", "format": formats[kind]}
    if kind is decimal.Decimal:
        return {"type": ["string", "number"]}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return {"enum": [m.value for m in kind]}
    if origin in (list, set, frozenset, Sequence) or kind is list:
        args = get_args(kind)
        return {"type": "array", "items": _schema_of(args[0]) if args else {}}
    if origin is tuple:
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema_of(args[0])}
        return {
            "type": "array",
            "prefixItems": [_schema_of(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin in (dict, Mapping) or kind is dict:
        args = get_args(kind)
        return {"type": "object", "additionalProperties": _schema_of(args[1]) if args else {}}
    if dataclasses.is_dataclass(kind) or _is_typeddict(kind):
        return _record_schema(kind)
    return {}


def _record_schema(cls: Any, reject_unknown: bool = False) -> dict[str, Any]:
    hints = _hints(cls)
    names = (
        [f.name for f in dataclasses.fields(cls) if f.init]
        if dataclasses.is_dataclass(cls)
        else list(hints)
    )
    schema: dict[str, Any] = {
        "type": "object",
        "title": cls.__name__,
        "properties": {n: _schema_of(hints[n]) for n in names},
        "required": sorted(_required(cls)),
    }
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        schema["description"] = cls.__doc__.strip()
    if reject_unknown:
        schema["additionalProperties"] = False
    return schema


# -- the fast path: a loader compiled once per class -----------------------------------------
class _Bad(Exception):
    """Raised by a compiled loader at the first value that does not fit; the slow
    checker then runs to name every problem."""


_BAD = _Bad()


def _compile(kind: Any, reject_unknown: bool) -> Callable[[Any], Any]:
    """A function that checks and converts a value of type ``kind`` or raises ``_Bad``.

    The happy path of :func:`_load`, specialised once per type: no path strings,
    no problem lists, no type dispatch per value.
    """
    origin = get_origin(kind)
    if kind is Any or kind is object:
        return lambda v: v
    if kind is str or kind is bool:
        exact = kind

        def same(v: Any) -> Any:
            if type(v) is exact:
                return v
            raise _BAD

        return same
    if kind is int:

        def integer(v: Any) -> Any:
            if type(v) is int:
                return v
            raise _BAD

        return integer
    if kind is float:

        def number(v: Any) -> Any:
            t = type(v)
            if t is float:
                return v
            if t is int:
                return float(v)
            raise _BAD

        return number
    if origin is list or kind is list:
        args = get_args(kind)
        if not args or args[0] is Any:
            return lambda v: v if type(v) is list else _raise()
        item = _compile(args[0], reject_unknown)
        if args[0] in (str, int, bool):
            exact = args[0]

            def simple_list(v: Any) -> Any:
                if type(v) is not list:
                    raise _BAD
                for x in v:
                    if type(x) is not exact:
                        raise _BAD
                return v

            return simple_list
        return lambda v: [item(x) for x in v] if type(v) is list else _raise()
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _compile_dataclass(kind, reject_unknown)

    # Unions, Literals, dicts, tuples, enums, dates, TypedDicts: the general checker.
    def general(v: Any) -> Any:
        problems: Problems = []
        out = _load(kind, v, "", problems, reject_unknown)
        if problems:
            raise _BAD
        return out

    return general


def _raise() -> Any:
    raise _BAD


_SIMPLE = {str: "str", int: "int", bool: "bool"}


def _dataclass_body(cls: Any, reject_unknown: bool) -> tuple[list[str], dict[str, Any]]:
    """Straight-line code that checks ``data`` and sets ``obj`` to a ``cls`` made from it.

    Like the ``__init__`` that ``dataclasses`` itself writes, the source is built
    from the class definition only (field names enter it as string literals, types
    as names bound in its namespace) and compiled once, when the class is first
    loaded; event data is only ever a value the code looks at. A value that does
    not fit raises ``Bad`` (or ``KeyError``, for a missing field). A field type it
    has no inline check for gets a compiled checker (:func:`_compile`).
    """
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    missing = dataclasses.MISSING
    # Filling __dict__ skips the generated __init__ (a third of the cost), which is
    # only the same when __init__ does nothing else: no __post_init__, no InitVar,
    # no slots, every field in __init__, the __init__ dataclasses wrote.
    direct = (
        not hasattr(cls, "__post_init__")
        and hasattr(cls, "__dict__")
        and "__slots__" not in cls.__dict__
        and len(fields) == len(dataclasses.fields(cls))
        and getattr(getattr(cls.__init__, "__code__", None), "co_filename", "") == "<string>"
    )
    ns: dict[str, Any] = {
        "cls": cls,
        "new": object.__new__,
        "Bad": _Bad,
        "MISSING": missing,
        "names": frozenset(f.name for f in fields),
    }
    lines = ["if type(data) is not dict: raise Bad"]
    if reject_unknown:
        lines.append("if not names.issuperset(data): raise Bad")
    out: list[str] = []
    for i, f in enumerate(fields):
        key, v, kind = repr(f.name), f"v{i}", hints[f.name]
        required = f.default is missing and f.default_factory is missing
        if required:
            lines.append(f"{v} = data[{key}]")  # a KeyError is a missing field
            indent = ""
        else:
            ns[f"d{i}"] = f.default
            ns[f"f{i}"] = f.default_factory
            default = f"d{i}" if f.default is not missing else f"f{i}()"
            lines.append(f"{v} = data.get({key}, MISSING)")
            lines.append(f"if {v} is not MISSING:")
            indent = "    "
        if kind in _SIMPLE:
            lines.append(f"{indent}if type({v}) is not {_SIMPLE[kind]}: raise Bad")
        elif kind is float:
            lines.append(f"{indent}if type({v}) is not float:")
            lines.append(f"{indent}    if type({v}) is int: {v} = float({v})")
            lines.append(f"{indent}    else: raise Bad")
        elif get_origin(kind) is list and get_args(kind) and get_args(kind)[0] in _SIMPLE:
            item = _SIMPLE[get_args(kind)[0]]
            lines.append(f"{indent}if type({v}) is not list: raise Bad")
            lines.append(f"{indent}for x in {v}:")
            lines.append(f"{indent}    if type(x) is not {item}: raise Bad")
        elif kind is not Any and kind is not object:
            ns[f"c{i}"] = _compile(kind, reject_unknown)
            lines.append(f"{indent}{v} = c{i}({v})")
        if not required:  # the default, as __init__ would give it
            lines.append(f"else: {v} = {default}")
        out.append(f"{key}: {v}")
    values = "{" + ", ".join(out) + "}"
    if direct:
        lines += ["obj = new(cls)", f"obj.__dict__.update({values})"]
    else:
        lines.append(f"obj = cls(**{values})")
    return lines, ns


#: builtins the generated code reads, bound as parameter defaults (local-variable speed)
_LOCALS = "type=type, str=str, int=int, float=float, bool=bool, dict=dict, list=list"


def _build(name: str, source: list[str], ns: dict[str, Any], cls: Any) -> Callable[..., Any]:
    code = compile("\n".join(source), f"<eventbus {name} of {cls.__qualname__}>", "exec")
    exec(code, ns)  # noqa: S102 - source made from the class definition, not from data
    fn: Callable[..., Any] = ns[name]
    return fn


def _compile_dataclass(
    cls: Any, reject_unknown: bool, on_bad: Callable[[Any], Any] | None = None
) -> Callable[[Any], Any]:
    """``data -> cls``; a value that does not fit calls ``on_bad(data)`` (else raises Bad)."""
    lines, ns = _dataclass_body(cls, reject_unknown)
    ns["on_bad"] = on_bad
    source = [
        f"def load(data, {_LOCALS}):",
        "  try:",
        *(f"    {line}" for line in lines),
        "  except (Bad, KeyError):",
        "    return on_bad(data)" if on_bad else "    raise Bad",
        "  return obj",
    ]
    return _build("load", source, ns, cls)


def compile_call(
    cls: Any,
    reject_unknown: bool,
    event_type: str,
    handler: Callable[[Any], Any],
    general: Callable[[Any], Any],
    invalid: Callable[[Any], Any],
) -> Callable[[Any], Any] | None:
    """For a dataclass: ``event -> handler(cls from event.data)`` in one frame.

    An event of ``event_type`` without extension attributes takes the inline
    path; any other goes through ``general(event)`` (which returns the model);
    data that does not fit calls ``invalid(event)``, which raises (or returns the model). None for
    classes of other kinds (they use their loader).
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        return None
    lines, ns = _dataclass_body(cls, reject_unknown)
    ns.update(only=event_type, handler=handler, general=general, invalid=invalid)
    source = [
        f"def call(event, {_LOCALS}):",
        "  if event.type != only or event.extensions:",
        "    return handler(general(event))",
        "  data = event.data",
        "  try:",
        *(f"    {line}" for line in lines),
        "  except (Bad, KeyError):",
        "    obj = invalid(event)",
        "  return handler(obj)",
    ]
    return _build("call", source, ns, cls)


class _Stdlib(ModelKind):
    def to_data(self, obj: Any) -> Any:
        return _dump(obj)

    def __init__(self, name: str) -> None:
        self.name = name

    def loader(self, cls: Any, reject_unknown: bool) -> Callable[[Any], Any]:
        if self.name != "dataclass":
            return super().loader(cls, reject_unknown)
        return _compile_dataclass(
            cls, reject_unknown, lambda data: self.from_data(cls, data, reject_unknown)
        )

    def from_data(self, cls: Any, data: Any, reject_unknown: bool) -> Any:
        problems: Problems = []
        out = _load_record(cls, data, "", problems, reject_unknown)
        if problems:
            raise ModelErrors([(p.lstrip("."), m) for p, m in problems])
        return out

    def schema(self, cls: Any) -> dict[str, Any]:
        return _record_schema(cls)

    def fields(self, cls: Any) -> set[str]:
        return set(_hints(cls))

    def check(self, cls: Any, obj: Any) -> Any:
        if _is_typeddict(cls) and not isinstance(obj, dict):
            raise ModelErrors([("", f"expected a dict for {cls.__name__}")])
        return super().check(cls, obj)


# -- pydantic v2 and msgspec ---------------------------------------------------------------
class _Pydantic(ModelKind):
    name = "pydantic"

    def to_data(self, obj: Any) -> Any:
        return obj.model_dump(mode="json", by_alias=True)

    def from_data(self, cls: Any, data: Any, reject_unknown: bool) -> Any:
        import pydantic

        if reject_unknown and isinstance(data, dict):
            known = self.fields(cls)
            unknown = [(k, "unknown field") for k in data if k not in known]
            if unknown:
                raise ModelErrors(unknown)
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ModelErrors(
                [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
            ) from None

    def loader(self, cls: Any, reject_unknown: bool) -> Callable[[Any], Any]:
        if reject_unknown:
            return super().loader(cls, reject_unknown)
        import pydantic

        validate, invalid, slow = cls.model_validate, pydantic.ValidationError, self.from_data

        def load(data: Any) -> Any:
            try:
                return validate(data)
            except invalid:
                return slow(cls, data, False)

        return load

    def check(self, cls: Any, obj: Any) -> Any:
        data = self.to_data(obj)
        self.from_data(cls, data, False)  # catches model_construct() and assignment bypasses
        return data

    def schema(self, cls: Any) -> dict[str, Any]:
        return dict(cls.model_json_schema(by_alias=True))

    def fields(self, cls: Any) -> set[str]:
        return {f.alias or n for n, f in cls.model_fields.items()}


class _Msgspec(ModelKind):
    name = "msgspec"

    def to_data(self, obj: Any) -> Any:
        import msgspec

        return msgspec.to_builtins(obj)

    def from_data(self, cls: Any, data: Any, reject_unknown: bool) -> Any:
        import msgspec

        if reject_unknown and isinstance(data, dict):
            unknown = [(k, "unknown field") for k in data if k not in self.fields(cls)]
            if unknown:
                raise ModelErrors(unknown)
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            text = str(exc)
            where = ""
            if " - at `$" in text:
                text, _, where = text.rpartition(" - at `$")
                where = where.rstrip("`").lstrip(".")
            raise ModelErrors([(where, text)]) from None

    def loader(self, cls: Any, reject_unknown: bool) -> Callable[[Any], Any]:
        if reject_unknown:
            return super().loader(cls, reject_unknown)
        import msgspec

        convert, invalid, slow = msgspec.convert, msgspec.ValidationError, self.from_data

        def load(data: Any) -> Any:
            try:
                return convert(data, cls, strict=False)
            except invalid:
                return slow(cls, data, False)

        return load

    def schema(self, cls: Any) -> dict[str, Any]:
        import msgspec

        schema = msgspec.json.schema(cls)
        ref = schema.get("$ref", "")
        defs = schema.get("$defs", {})
        name = ref.rsplit("/", 1)[-1]
        if name in defs:  # inline the top-level definition, keep the others
            top = dict(defs.pop(name))
            if defs:
                top["$defs"] = defs
            return top
        return dict(schema)

    def fields(self, cls: Any) -> set[str]:
        return set(getattr(cls, "__struct_encode_fields__", None) or cls.__struct_fields__)


_DATACLASS = _Stdlib("dataclass")
_TYPEDDICT = _Stdlib("typeddict")
_PYDANTIC = _Pydantic()
_MSGSPEC = _Msgspec()


def kind_of(cls: Any) -> ModelKind | None:
    """The kind of model ``cls`` is, or None (not a model class)."""
    if not isinstance(cls, type):
        return None
    if dataclasses.is_dataclass(cls):
        return _DATACLASS
    if _is_typeddict(cls):
        return _TYPEDDICT
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        if not hasattr(cls, "model_validate"):  # pragma: no cover - pydantic v1
            from .._errors import ConfigError

            raise ConfigError(
                f"{cls.__name__} is a pydantic v1 model; typed events need pydantic v2: "
                "pip install 'eventbus[pydantic]'"
            )
        return _PYDANTIC
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and issubclass(cls, msgspec.Struct):
        return _MSGSPEC
    return None
