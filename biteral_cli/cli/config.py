"""The options file (``biteral-import.toml`` or ``--config PATH``): keys are option names, values checked."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .options import IMPORT, MAP, Option, config_options

CONFIG_NAME = "biteral-import.toml"

#: Keys older versions accepted that the naming rule would not give (the --json parameter's name).
LEGACY_KEYS = {"json-out": "json"}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def arg_value(args: list[str], flag: str) -> str | None:
    """The value given to ``flag`` on the command line (``--flag V`` or ``--flag=V``), if any."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def load_config(args: list[str]) -> dict[str, Any]:
    """The options set in ``--config PATH`` (or ./biteral-import.toml), by option name, each of its type."""
    given = arg_value(args, "--config")
    path = Path(given) if given is not None else Path(CONFIG_NAME)
    if given is None and not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"--config {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from exc
    keys = {_key(key): value for key, value in data.items()}
    if {"api-key", "key"} & keys.keys():
        raise ConfigError(
            f"{path}: the API key is never read from the config file; set BITERAL_API_KEY or use --api-key-file"
        )
    known = config_options()
    unknown = sorted(keys.keys() - known.keys())
    if unknown:
        raise ConfigError(f"{path}: unknown option(s): {', '.join(unknown)}")
    return {key: _coerce(path, known[key], value) for key, value in keys.items()}


def default_map(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Config values as the defaults of each command that has the option (the environment and the
    command line still win)."""
    by_name = config_options()
    return {
        command: {by_name[key].param: value for key, value in values.items() if command in by_name[key].commands}
        for command in (IMPORT, MAP)
    }


def _key(key: str) -> str:
    name = key.replace("_", "-")
    return LEGACY_KEYS.get(name, name)


def _coerce(path: Path | str, option: Option, value: Any) -> Any:
    """``value`` as the option's type; a ConfigError names the file, the key and the value."""
    kind = option.kind
    converted: Any = _NOT
    if kind is bool:
        if isinstance(value, bool):
            converted = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            converted = value.strip().lower() in _TRUE
        why = "not true or false"
    elif kind in (int, float):
        if not isinstance(value, bool) and isinstance(value, int | float | str):
            with contextlib.suppress(ValueError):
                converted = kind(value)
            if kind is int and isinstance(value, float) and not value.is_integer():
                converted = _NOT
        why = "not a whole number" if kind is int else "not a number"
    elif kind == list[str]:
        if isinstance(value, dict):  # map = { code = "Customer ID" }
            value = [f"{k}={v}" for k, v in value.items()]
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            converted = value
        why = "not a list of texts"
    else:  # str and Path options: a TOML number (max-errors = 50, sheet = 0) is read as its text
        if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
            converted = kind(str(value))
        why = "not a text"
    if converted is _NOT:
        raise ConfigError(f"{path}: {option.name} = {value!r}: {why}")
    return converted


_NOT: Any = object()
