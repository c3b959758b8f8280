"""Documents read from JSON checked against the types their dataclass declares, so a value of the
wrong type is refused where it is read, naming the field and the value, instead of failing deep in
whatever uses it."""

import functools
import types
from collections.abc import Callable
from dataclasses import is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

Check = Callable[[Any], bool]


@functools.cache
def checker(hint: Any) -> Check:
    """The test of whether a value read from JSON is of the type `hint` a contract field declares (a
    JSON array for a list or tuple, an object for a dict or dataclass; no bool where a number is
    declared). Built once per type: a summary holds a RecordedFile per product, so validating
    100,000 products checks 100,000 of them."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        options = [checker(option) for option in args]
        return lambda value: any(check(value) for check in options)
    if origin is Literal:
        return lambda value: any(value == option and type(value) is type(option) for option in args)
    if hint is type(None):
        return lambda value: value is None
    if hint in (int, float):
        numbers = (int, float) if hint is float else int
        return lambda value: isinstance(value, numbers) and not isinstance(value, bool)
    if hint in (str, bool):
        return lambda value: isinstance(value, hint)
    if origin in (list, tuple):  # XCom may keep a tuple a tuple
        if origin is tuple and args[-1] is not Ellipsis:
            items = [checker(item) for item in args]
            return lambda value: (
                isinstance(value, (list, tuple))
                and len(value) == len(items)
                and all(check(item) for check, item in zip(items, value, strict=True))
            )
        item_check = checker(args[0])
        return lambda value: isinstance(value, (list, tuple)) and all(map(item_check, value))
    if hint is dict:
        return lambda value: isinstance(value, dict)
    if origin is dict:
        key_check, value_check = checker(args[0]), checker(args[1])
        return lambda value: isinstance(value, dict) and all(key_check(k) and value_check(v) for k, v in value.items())
    if is_dataclass(hint):
        field_checks = {name: checker(field_type) for name, field_type in get_type_hints(hint).items()}
        return lambda value: (
            isinstance(value, dict)
            and value.keys() == field_checks.keys()
            and all(check(value[name]) for name, check in field_checks.items())
        )
    raise TypeError(f"no JSON reading for {hint}")


def check_types(cls: type, document: dict, source: str, error: type[Exception]) -> None:
    """Every field of `document` is of the type `cls` declares for it, or `error` naming the first
    that is not, with its value."""
    for name, hint in get_type_hints(cls).items():
        if name in document and not checker(hint)(document[name]):
            shown = repr(document[name])
            shown = shown if len(shown) <= 120 else f"{shown[:120]}..."
            expected = hint.__name__ if isinstance(hint, type) and not get_args(hint) else str(hint)
            raise error(f"{source}: field {name} is {shown}, not of type {expected.replace('typing.', '')}")
