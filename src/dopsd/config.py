"""Configuration dataclasses: range errors that name the field, YAML files, command-line overrides."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path

import yaml

from dopsd.errors import DopsdError

GROUPS = ("model", "data", "rollout", "method", "optimization", "evaluation", "run")


def option(default=None, help: str = "", group: str = "method", *, factory=None):
    """A config field with its one-line meaning and ``--help`` group (TRL's ``field(metadata={"help": ...})``).

    A subclass that only changes a default may redeclare the field plainly: its help is found up the class tree.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    metadata = {"help": help, "group": group}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_help(cls, name: str) -> tuple[str, str]:
    """``(help, group)`` of field ``name``: from the nearest class in ``cls``'s tree that documents it."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata.get("help"):
            return declared.metadata["help"], declared.metadata["group"]
    raise KeyError(f"{cls.__name__}.{name} has no help text: declare it with dopsd.config.option")


class ConfigError(DopsdError, ValueError):
    """A configuration value out of range; the message names the field."""

    def __init__(self, field: str, value, requirement: str):
        self.field = field
        super().__init__(f"config field {field!r} = {value!r} {requirement}")


FINITE = "must be a finite number (not inf or nan)"


def check_finite_fields(config) -> None:
    """Refuses a config dataclass holding an infinite or NaN float in any field (a learning rate of inf trains NaN
    weights; a temperature of nan samples nothing): one ConfigError naming the field."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(spec.name, value, FINITE)


TRUE, FALSE, NULL = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("null", "none", "~")


def _from_text(option, text: str):
    """Reads command-line text as ``option``; raises ValueError when it does not fit."""
    lowered = text.strip().lower()
    if option is type(None):
        if lowered in NULL:
            return None
        raise ValueError
    if option is bool:
        if lowered in TRUE + FALSE:
            return lowered in TRUE
        raise ValueError
    if option is int:
        return int(text)
    if option is float:
        value = float(text)
        if not math.isfinite(value):
            raise NotFinite
        return value
    if option is str:
        return text
    if typing.get_origin(option) in (list, tuple):
        return [item.strip() for item in text.split(",") if item.strip()]
    raise ValueError


class NotFinite(ValueError):
    """Command-line text that reads as a float, but an infinite or NaN one."""


def _coerce(cls, name: str, value):
    """Turns YAML values and command-line text into the field's declared type (int -> float, "a,b" -> list...)."""
    hint = typing.get_type_hints(cls)[name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if isinstance(value, CommandLineText):
        # None first, so "null" means None; str last, so "5" is a number where a number fits.
        ordered = sorted(options, key=lambda o: (o is not type(None), o is str))
        for option in ordered:
            try:
                return _from_text(option, str(value))
            except NotFinite:
                raise ConfigError(name, str(value), FINITE) from None
            except ValueError:
                continue
        raise ConfigError(name, str(value), f"must be {_names(options)}")
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(name, value, "must not be null")
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # YAML's .inf and .nan
                raise ConfigError(name, value, FINITE)
            return float(value)
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) in (list, tuple) and isinstance(value, (list, tuple)):
            return list(value)
    hint_text = " (YAML reads a bare no/yes as a boolean: quote it)" if isinstance(value, bool) else ""
    raise ConfigError(name, value, f"must be {_names(options)}{hint_text}")


def _names(options) -> str:
    return " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)


class CommandLineText(str):
    """A value typed on the command line: read according to the field's type, not by YAML's rules."""


def config_from_dict(cls, values: dict, source: str = "config"):
    """Builds ``cls`` from a mapping, refusing unknown keys and values of the wrong type."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DopsdError(f"{source}: unknown config field(s) {', '.join(unknown)}; see the docs of {cls.__name__}")
    return cls(**{name: _coerce(cls, name, value) for name, value in values.items()})


def parse_overrides(arguments: list[str]) -> dict:
    """``["--key", "value", "--flag=1"]`` into ``{"key": "value", "flag": "1"}``, read later by the field's type."""
    values, index = {}, 0
    while index < len(arguments):
        argument = arguments[index]
        if not argument.startswith("--"):
            raise DopsdError(f"unexpected argument {argument!r}: overrides are written --field value")
        key, _, inline = argument[2:].partition("=")
        if not inline:
            if index + 1 >= len(arguments):
                raise DopsdError(f"--{key} needs a value")
            inline = arguments[index + 1]
            index += 1
        values[key.replace("-", "_")] = CommandLineText(inline)
        index += 1
    return values


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that repeats a key (``seed: 1`` then ``seed: 2`` would otherwise keep
    the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_config(cls, path: str | Path | None = None, overrides: list[str] | dict | None = None):
    """``cls`` from an optional YAML file, then command-line style overrides on top."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DopsdError(f"config file not found: {path}")
        try:
            loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
        except UnicodeDecodeError as error:
            raise DopsdError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                             f"{error.start})") from error
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise DopsdError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise DopsdError(f"{path}: expected a mapping of config fields")
        values.update(loaded or {})
    if overrides:
        values.update(parse_overrides(overrides) if isinstance(overrides, list) else overrides)
    return config_from_dict(cls, values, str(path) if path else "config")


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
