"""How one config value is judged, and how a found value reads in an error.

Each option in the table (``schema``) names a rule; ``build`` applies it to the raw value from
YAML, ``--set`` or ``sweeper.optimize()`` alike, so one key has one rule on every path.
Stdlib only.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._redact import redact_uri
from ..errors import ConfigProblem

__all__ = [
    "Flag",
    "Fraction",
    "Integer",
    "Invalid",
    "Issue",
    "ModuleList",
    "OneOf",
    "Rule",
    "Seconds",
    "Section",
    "Seed",
    "Text",
    "TextList",
    "Workers",
    "closest",
    "count_text",
    "did_you_mean",
    "in_file_order",
    "is_int",
    "is_number",
    "line_of",
    "show",
]

#: Longest wall-clock or per-trial timeout: a year. Longer is a typo, and the OS timers that
#: wait on it overflow near 2**31 s.
MAX_SECONDS = 365 * 24 * 3600

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
DOTTED_RE = re.compile(rf"^{_IDENT}(?:\.{_IDENT})*\Z")


def is_int(value: Any) -> bool:
    """An integer that is not a boolean (YAML ``true`` is a bool, and bool subclasses int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a boolean (nor an int too big for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def show(value: Any) -> str:
    """How a found value reads in an error: short, YAML-flavoured, credentials masked."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, str):
        text = redact_uri(value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else f"an integer of {len(text)} digits"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def count_text(count: int) -> str:
    """A count for an error: exact with separators, or rounded when it is astronomic (1e+300)."""
    return f"{count:,}" if count < 10**15 else f"{count:.3g}"


def closest(word: str, options: Sequence[str], *, n: int = 1) -> list[str]:
    """The options ``word`` is most likely a typo of (case-insensitive as a fallback)."""
    matches = difflib.get_close_matches(word, list(options), n=n, cutoff=0.6)
    if not matches:
        lowered = {option.lower(): option for option in options}
        matches = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)]
    return matches


def did_you_mean(word: str, options: Sequence[str], *, n: int = 1) -> str | None:
    """``"did you mean 'x'?"`` for the closest options, or None."""
    matches = closest(word, options, n=n)
    if not matches:
        return None
    return "did you mean " + " or ".join(repr(m) for m in matches) + "?"


def line_of(lines: Mapping[str, int], key: str) -> int | None:
    """The line of ``key`` in its file, else of its nearest ancestor that has one."""
    path = key
    while path:
        if path in lines:
            return lines[path]
        path = path.rpartition(".")[0]
    return None


def in_file_order(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Read top to bottom like the file; problems without a line (missing keys) last."""
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a value; ``at`` is a key below the option's (a list index)."""

    got: str | None
    hint: str | None = None
    expected: str | None = None  # None: the rule's own ``expected``
    at: str | None = None


class Invalid(Exception):
    """A rule refused a value; carries every issue found in it (each item of a list)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("; ".join(issue.got or "" for issue in issues))
        self.issues = list(issues)

    @classmethod
    def one(cls, got: str | None, hint: str | None = None, expected: str | None = None) -> Invalid:
        return cls([Issue(got, hint, expected)])


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What a key accepts. ``parse`` gets a value that is not null and returns the field's value."""

    expected: str = "a value"
    nullable: bool = True  # an explicit null is accepted and gives None

    def parse(self, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Section(Rule):
    """A key built by its own step in ``build`` (it is a section, or depends on other keys)."""

    def parse(self, value: Any) -> Any:
        raise NotImplementedError(f"built by build._Builder, not by a rule ({self.expected})")


@dataclass(frozen=True, kw_only=True)
class Integer(Rule):
    minimum: int = 0
    maximum: int | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        if self.expected == Rule.expected:
            bounds = f">= {self.minimum}" if self.maximum is None else f"in [{self.minimum}, {self.maximum}]"
            object.__setattr__(self, "expected", f"an integer {bounds}")

    def parse(self, value: Any) -> int:
        if not is_int(value) or value < self.minimum or (self.maximum is not None and value > self.maximum):
            hint = self.hint
            if hint is None and isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
                hint = f"write {int(value)}: YAML reads a number with a dot or an exponent as a float"
            raise Invalid.one(show(value), hint)
        return int(value)


@dataclass(frozen=True, kw_only=True)
class Seed(Integer):
    expected: str = "an integer in [0, 2**32)"
    minimum: int = 0
    maximum: int | None = 2**32 - 1


@dataclass(frozen=True, kw_only=True)
class Workers(Rule):
    """``n_jobs``: a count of worker processes; -1 (or null) means all cores, stored as None."""

    expected: str = "an integer >= 1, or -1 / null for all cores"

    def parse(self, value: Any) -> int | None:
        if is_int(value) and value == 0:
            raise Invalid.one("0", "n_jobs=0 has no meaning")
        if not is_int(value) or value < -1:
            raise Invalid.one(show(value))
        return None if value == -1 else int(value)


@dataclass(frozen=True, kw_only=True)
class Seconds(Rule):
    expected: str = "a number of seconds > 0"

    def parse(self, value: Any) -> float:
        if not is_number(value) or value <= 0:
            raise Invalid.one(show(value))
        if value > MAX_SECONDS:
            raise Invalid.one(show(value), expected=f"a number of seconds in (0, {MAX_SECONDS:,}] (a year)")
        return float(value)


@dataclass(frozen=True, kw_only=True)
class Fraction(Rule):
    expected: str = "a fraction between 0 and 1 (exclusive)"

    def parse(self, value: Any) -> float:
        if not is_number(value) or not 0 < value < 1:
            raise Invalid.one(show(value))
        return float(value)


@dataclass(frozen=True, kw_only=True)
class Flag(Rule):
    expected: str = "true or false"
    nullable: bool = False

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid.one(show(value))
        return value


@dataclass(frozen=True, kw_only=True)
class Text(Rule):
    expected: str = "a non-empty string"
    pattern: re.Pattern[str] | None = None
    max_length: int | None = None
    hint: str | None = None

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or (self.pattern and not self.pattern.match(value)):
            raise Invalid.one(show(value), self.hint)
        if self.max_length is not None and len(value) > self.max_length:
            raise Invalid.one(f"{len(value):,} characters", expected=f"{self.expected} of at most {self.max_length:,} characters")
        return value


@dataclass(frozen=True, kw_only=True)
class OneOf(Rule):
    """A name from a fixed list, matched case-insensitively, stored lower-case."""

    options: tuple[str, ...] = ()

    def parse(self, value: Any) -> str:
        if isinstance(value, str) and value.lower() in self.options:
            return value.lower()
        hint = did_you_mean(value, self.options) if isinstance(value, str) else None
        raise Invalid.one(show(value), hint, expected="one of " + ", ".join(self.options))


@dataclass(frozen=True, kw_only=True)
class TextList(Rule):
    """A non-empty list of distinct non-empty strings, stored as a tuple."""

    expected: str = "a list of distinct non-empty strings"
    max_length: int = 250

    def parse(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise Invalid.one(show(value))
        issues: list[Issue] = []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip() or len(item) > self.max_length:
                expected = f"a non-empty string of at most {self.max_length} characters"
                issues.append(Issue(show(item), expected=expected, at=str(index)))
            elif item in seen:
                issues.append(Issue(f"duplicate {show(item)}", expected="each name once", at=str(index)))
            seen.add(item)
        if issues:
            raise Invalid(issues)
        return tuple(value)


@dataclass(frozen=True, kw_only=True)
class ModuleList(Rule):
    """Module prefixes like ``mypkg`` or ``mypkg.models``, stored without stray dots."""

    expected: str = "a list of module prefixes (e.g. [mypkg])"

    def parse(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Invalid.one(show(value))
        issues: list[Issue] = []
        found: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not DOTTED_RE.match(item.strip(".")):
                issues.append(Issue(show(item), expected="a module name like mypkg or mypkg.models", at=str(index)))
            else:
                found.append(item.strip("."))
        if issues:
            raise Invalid(issues)
        return tuple(found)
