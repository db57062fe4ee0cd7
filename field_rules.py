"""Rules for a setting's value: type, range or allowed words, worded for the user.

Each rule has ``parse(value)`` (the value as it will be used, or :class:`Rejected`) and
``allowed`` (what it accepts, in words). A dataclass field carries its rule in its metadata
(:func:`setting`); :func:`check_fields` applies them. The policy's settings, the training settings
(``scoremodel.training.TrainConfig``, also a sweep's ``model:`` values) and the run
configuration file are checked by the same rules.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pandas as pd


class Rejected(Exception):
    """A value does not satisfy a rule (the caller words the error)."""


# ----- rules: what one field accepts ----------------------------------------------------------


@dataclass(frozen=True)
class Number:
    """A finite number within optional bounds (``*_open``: the bound itself is excluded).

    Numeric text is accepted too: YAML 1.1 reads ``5.5e-4`` (no dot in the mantissa) as text.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def allowed(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"a number in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"a number {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"a number {'<' if self.high_open else '<='} {_number(self.high)}"
        return "a number"

    def parse(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise Rejected
        try:
            number = float(value)
        except ValueError:
            raise Rejected from None
        if not math.isfinite(number):
            raise Rejected
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise Rejected
        if self.high is not None and (
            number > self.high or (self.high_open and number == self.high)
        ):
            raise Rejected
        return number


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Integer:
    """A whole number (not a float, not a boolean) of at least ``low``."""

    low: int

    @property
    def allowed(self) -> str:
        return f"a whole number >= {self.low}"

    def parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.low:
            raise Rejected
        return value


@dataclass(frozen=True)
class Flag:
    """true or false."""

    allowed: str = "true or false"

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Rejected
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words (``upper``: case-insensitive, stored in upper case)."""

    values: tuple[str, ...]
    upper: bool = False

    @property
    def allowed(self) -> str:
        return f"one of {', '.join(self.values)}"

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Rejected
        word = value.upper() if self.upper else value
        if word not in self.values:
            raise Rejected
        return word


@dataclass(frozen=True)
class Text:
    """A non-empty string, optionally matching a regular expression."""

    allowed: str = "a non-empty text"
    pattern: str | None = None

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Rejected
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise Rejected
        return value


@dataclass(frozen=True)
class Parsed:
    """A string that ``parser`` accepts (kept as the string)."""

    parser: Callable[[str], object]
    allowed: str

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Rejected
        try:
            self.parser(value)
        except ValueError:
            raise Rejected from None
        return value


@dataclass(frozen=True)
class Timestamp:
    """An ISO date/time, kept as ISO text (YAML turns an unquoted date into a date object)."""

    allowed: str = "an ISO date/time (UTC) such as 2027-01-01 or 2027-01-01T12:00"

    def parse(self, value: Any) -> str:
        if isinstance(value, (datetime.date, datetime.datetime)):
            return value.isoformat()
        if not isinstance(value, str):
            raise Rejected
        try:
            pd.Timestamp(value)
        except ValueError:
            raise Rejected from None
        return value


@dataclass(frozen=True)
class Nullable:
    """``null`` or what ``rule`` accepts."""

    rule: Any

    @property
    def allowed(self) -> str:
        return f"{self.rule.allowed}, or null"

    def parse(self, value: Any) -> Any:
        return None if value is None else self.rule.parse(value)


@dataclass(frozen=True)
class Either:
    """What any of ``rules`` accepts (the first that does)."""

    rules: tuple[Any, ...]

    @property
    def allowed(self) -> str:
        return ", or ".join(rule.allowed for rule in self.rules)

    def parse(self, value: Any) -> Any:
        for rule in self.rules:
            try:
                return rule.parse(value)
            except Rejected:
                continue
        raise Rejected


POSITIVE = Number(low=0, low_open=True)
NON_NEGATIVE = Number(low=0)
PROBABILITY = Number(0, 1)
FRACTION_BELOW_ONE = Number(0, 1, high_open=True)  # [0, 1)
OPEN_FRACTION = Number(0, 1, low_open=True, high_open=True)  # (0, 1)
PATH = Text("a non-empty path")


def setting(default: Any, rule: Any) -> Any:
    """A dataclass field with its default and the rule its value must satisfy."""
    return field(default=default, metadata={"rule": rule})


def rules_of(cls: type) -> dict[str, Any]:
    """The rule of each field of the dataclass ``cls`` that has one."""
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}


def check_fields(settings: object) -> None:
    """Raise ValueError naming the first field of ``settings`` whose value breaks its rule."""
    for name, rule in rules_of(type(settings)).items():
        value = getattr(settings, name)
        try:
            rule.parse(value)
        except Rejected:
            raise ValueError(f"{name} = {value!r} is invalid; expected {rule.allowed}") from None
