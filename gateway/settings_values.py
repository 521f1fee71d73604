"""Reading setting values: TOML values, or text from the environment, into the typed fields of a settings
dataclass, with a sentence naming the setting when one cannot be used."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, get_args, get_origin, get_type_hints


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


def coerce(kind: Any, value: Any, where: str) -> Any:
    if get_origin(kind) is list:  # a TOML array, or comma-separated text from the environment
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        return [coerce(get_args(kind)[0], item.strip() if isinstance(item, str) else item, where)
                for item in items if not (isinstance(item, str) and not item.strip())]
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected a number, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: expected a number, got {value!r}") from None
    if kind is str:
        if isinstance(value, (dict, list)):
            raise SettingsError(f"{where}: expected text, got {value!r}")
        return str(value)
    raise SettingsError(f"{where}: unsupported setting type")


def build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    kwargs = {name: coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)
