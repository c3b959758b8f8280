"""Documents read from JSON checked against the types their dataclass declares, so a value of the
wrong type is refused where it is read, naming the field and the value, instead of failing deep in
whatever uses it."""

import types
from dataclasses import is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


def conforms(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON is of the type a contract field declares (a JSON array for a
    list or tuple, an object for a dict or dataclass; no bool where a number is declared)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return any(conforms(value, option) for option in args)
    if origin is Literal:
        return any(value == option and type(value) is type(option) for option in args)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):  # XCom may keep a tuple a tuple
            return False
        if origin is tuple and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(conforms, value, args))
        return all(conforms(item, args[0]) for item in value)
    if hint is dict:
        return isinstance(value, dict)
    if origin is dict:
        return isinstance(value, dict) and all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if is_dataclass(hint):
        hints = get_type_hints(hint)
        return (
            isinstance(value, dict)
            and value.keys() == hints.keys()
            and all(conforms(value[name], field_type) for name, field_type in hints.items())
        )
    raise TypeError(f"no JSON reading for {hint}")


def check_types(cls: type, document: dict, source: str, error: type[Exception]) -> None:
    """Every field of `document` is of the type `cls` declares for it, or `error` naming the first
    that is not, with its value."""
    for name, hint in get_type_hints(cls).items():
        if name in document and not conforms(document[name], hint):
            shown = repr(document[name])
            shown = shown if len(shown) <= 120 else f"{shown[:120]}..."
            expected = hint.__name__ if isinstance(hint, type) and not get_args(hint) else str(hint)
            raise error(f"{source}: field {name} is {shown}, not of type {expected.replace('typing.', '')}")
