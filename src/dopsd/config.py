"""Shared pieces of dopsd's configuration dataclasses."""

from __future__ import annotations

from dopsd.errors import DopsdError


class ConfigError(DopsdError, ValueError):
    """A configuration value out of range; the message names the field."""

    def __init__(self, field: str, value, requirement: str):
        self.field = field
        super().__init__(f"config field {field!r} = {value!r} {requirement}")
