"""Safe YAML loading for sweep configs, with a line number for every key.

Why not plain ``yaml.safe_load``: it reads ``1e-5`` as a string (yaml/pyyaml#173), silently
keeps the last of two duplicate keys, and forgets where each key was, so errors could not say
``sweep.yaml:7``. This loader is a ``yaml.SafeLoader`` subclass (no ``!!python/*`` tags, ever),
resolves floats the YAML 1.2 way, rejects duplicate keys, and refuses alias bombs.
Stdlib and PyYAML only.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import ConfigError, ConfigProblem

__all__ = ["MAX_NODES", "load_yaml", "load_yaml_value"]

#: Upper bound on nodes after expanding aliases; a real config has a few hundred
#: ("billion laughs": nine nested aliases of ten items each expand to 10**9 nodes).
MAX_NODES = 100_000

_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# YAML 1.2 core-schema floats: the exponent needs no dot and its sign is optional (pyyaml#173).
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and dates left as strings (a date is never a config value)."""


# Copy the class-level table before editing it, so yaml.SafeLoader itself stays untouched.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_FLOAT_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "-+0123456789.":
    # Float goes first: the int pattern cannot match anything with a dot or an exponent.
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (_FLOAT_TAG, _FLOAT_RE))


def _problem(key: str, expected: str, got: str | None, mark: Any = None) -> ConfigProblem:
    line = mark.line + 1 if mark is not None else None
    return ConfigProblem(key=key, expected=expected, got=got, line=line)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = node.value if isinstance(node, yaml.ScalarNode) else ""
    return f"a scalar ({value[:40]!r})" if value else "an empty document"


class _Walker:
    """Walks the composed node graph once: key lines, duplicate keys, size after aliases."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.problems: list[ConfigProblem] = []
        self._sizes: dict[int, int] = {}
        self._active: set[int] = set()

    def size(self, node: yaml.Node) -> int:
        """Node count with aliases expanded, memoized so an alias bomb costs nothing to measure."""
        ident = id(node)
        if ident in self._sizes:
            return self._sizes[ident]
        if ident in self._active:
            raise _Recursive(node)
        self._active.add(ident)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(self.size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(self.size(k) + self.size(v) for k, v in node.value)
        self._active.discard(ident)
        self._sizes[ident] = min(total, MAX_NODES + 1)
        return self._sizes[ident]

    def walk(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        # An aliased node is visited once: its keys keep the lines of their first appearance.
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                child_path = f"{path}.{index}" if path else str(index)
                self.lines.setdefault(child_path, child.start_mark.line + 1)
                self.walk(child, child_path, seen)
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    self.walk(value_node, path, seen)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # reported later as a non-string key
                child_path = f"{path}.{key_node.value}" if path else str(key_node.value)
                line = key_node.start_mark.line + 1
                ident = (key_node.tag, key_node.value)
                if ident in first_line:
                    self.problems.append(
                        ConfigProblem(
                            key=child_path,
                            expected="each key once per mapping",
                            got=f"duplicate key {key_node.value!r}",
                            line=line,
                            hint=f"first defined on line {first_line[ident]}",
                        )
                    )
                    continue
                first_line[ident] = line
                self.lines.setdefault(child_path, line)
                self.walk(value_node, child_path, seen)


class _Recursive(Exception):
    def __init__(self, node: yaml.Node) -> None:
        super().__init__("recursive alias")
        self.node = node


def _compose(text: str) -> tuple[_Loader, yaml.Node | None]:
    loader = _Loader(text)
    try:
        return loader, loader.get_single_node()
    except BaseException:
        loader.dispose()
        raise


def load_yaml(text: str, source: str | None) -> tuple[Any, dict[str, int]]:
    """Parse a config document safely and map each dotted key path to its 1-based line.

    Args:
        text: the YAML document.
        source: where it came from (a file path), used only in error messages.

    Returns:
        ``(data, lines)``: the top-level mapping and e.g. ``{"search_space.C.low": 7}``;
        list items get their index as a path segment (``"directions.0"``).

    Raises:
        ConfigError: malformed YAML, an unsafe tag, a duplicate key, an empty document,
            a top level that is not a mapping, or an alias bomb; each with its line.

    Example:
        >>> load_yaml("lr: 1e-5\\n", "x.yaml")
        ({'lr': 1e-05}, {'lr': 1})
    """
    try:
        loader, node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(source, [_problem("(yaml)", "valid YAML", exc.problem, mark)]) from None
    except yaml.reader.ReaderError as exc:  # control characters, binary garbage
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        got = (
            f"{exc.reason} (character #x{exc.character:04x})"
            if isinstance(exc.character, int)
            else exc.reason
        )
        raise ConfigError(source, [ConfigProblem("(yaml)", "UTF-8 text", got, line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_problem("(yaml)", "valid YAML", str(exc).replace("\n", " "))]) from None
    try:
        if node is None:
            raise ConfigError(
                source,
                [_problem("(top level)", "a mapping of config keys (e.g. 'n_trials: 20')", "an empty file")],
            )
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(
                source,
                [
                    _problem(
                        "(top level)",
                        "a mapping of config keys (e.g. 'n_trials: 20')",
                        _kind(node),
                        node.start_mark,
                    )
                ],
            )
        walker = _Walker()
        try:
            too_big = walker.size(node) > MAX_NODES
        except _Recursive as exc:
            raise ConfigError(
                source,
                [
                    _problem(
                        "(yaml)",
                        "no recursive aliases",
                        "an alias inside its own anchor",
                        exc.node.start_mark,
                    )
                ],
            ) from None
        if too_big:
            raise ConfigError(
                source,
                [
                    _problem(
                        "(yaml)",
                        f"at most {MAX_NODES:,} values after expanding aliases",
                        "more (an alias bomb?)",
                    )
                ],
            )
        walker.walk(node, "", set())
        if walker.problems:
            raise ConfigError(source, walker.problems)
        try:
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            # Unsafe tags (``!!python/object/apply:os.system``) land here: SafeLoader has no constructor.
            mark = exc.problem_mark or exc.context_mark
            raise ConfigError(
                source, [_problem("(yaml)", "plain YAML data (no !!python tags)", exc.problem, mark)]
            ) from None
        return data, walker.lines
    finally:
        loader.dispose()


def load_yaml_value(text: str) -> Any:
    """Parse one ``--set key=value`` value with the same rules as config files (``1e-5`` is a float).

    Raises:
        ValueError: the text is not valid YAML (the caller knows which override it was).
    """
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        # Only the problem: the full message quotes the text, which may hold a password.
        raise ValueError(exc.problem or "invalid YAML") from None
    except yaml.YAMLError:
        raise ValueError("invalid YAML") from None
    finally:
        loader.dispose()
