"""Safe YAML loading for sweep configs and ``--set`` values, with a line number for every key.

Why not plain ``yaml.safe_load``: it reads ``1e-5`` as a string (yaml/pyyaml#173), silently
keeps the last of two duplicate keys, and forgets where each key was, so errors could not say
``sweep.yaml:7``. This loader is a ``yaml.SafeLoader`` subclass (no ``!!python/*`` tags, ever),
resolves floats the YAML 1.2 way, rejects duplicate keys, and bounds what a document may
become: size and nesting after expanding aliases (an alias bomb of 300 characters would
otherwise grow to gigabytes), and nesting while parsing (PyYAML composes recursively).
Files and ``--set`` values pass the same limits. Stdlib and PyYAML only.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import ConfigError, ConfigProblem

__all__ = ["MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_NODES", "YamlValueError", "load_yaml", "load_yaml_value"]

#: Upper bound on nodes after expanding aliases; a real config has a few hundred
#: ("billion laughs": nine nested aliases of ten items each expand to 10**9 nodes).
MAX_NODES = 100_000
#: Upper bound on nesting, aliases expanded; a real config nests about 5 deep.
MAX_DEPTH = 64
#: Upper bound on a config file, and on one ``--set`` value.
MAX_CONFIG_BYTES = 1 << 20

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


class _Limit(Exception):
    """A document past one of the limits: what was expected, what was found, where."""

    def __init__(self, expected: str, got: str, mark: Any = None) -> None:
        super().__init__(f"expected {expected}, got {got}")
        self.expected, self.got, self.mark = expected, got, mark


class YamlValueError(ValueError):
    """A ``--set`` value past a limit; ``expected``/``got`` read like a config problem."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}, got {got}")
        self.expected, self.got = expected, got


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats, dates left as strings (a date is never a config value),
    and nesting bounded while composing (PyYAML's composer recurses once per level)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Limit(f"at most {MAX_DEPTH} levels of nesting", "deeper nesting", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _measure(root: yaml.Node) -> None:
    """Refuse a node graph that is recursive, or too big or too deep once aliases are expanded.

    Iterative and memoized per node, so measuring an alias bomb costs as little as reading it.

    Raises:
        _Limit: what was exceeded.
    """
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        ident = id(node)
        if ident in sizes:
            continue
        children = _children(node)
        if not done:
            active.add(ident)
            stack.append((node, True))
            for child in children:
                if id(child) in active:
                    raise _Limit("no recursive aliases", "an alias inside its own anchor", child.start_mark)
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        active.discard(ident)
        sizes[ident] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
        depths[ident] = 1 + max((depths[id(c)] for c in children), default=0)
        if sizes[ident] > MAX_NODES:
            raise _Limit(f"at most {MAX_NODES:,} values after expanding aliases", "more (an alias bomb?)")
        if depths[ident] > MAX_DEPTH + 1:  # +1: a mapping's keys are nodes one level down
            raise _Limit(
                f"at most {MAX_DEPTH} levels of nesting after expanding aliases", "deeper nesting", node.start_mark
            )


class _Walker:
    """Walks the composed node graph once: key lines and duplicate keys."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.problems: list[ConfigProblem] = []

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


def _compose(text: str) -> tuple[_Loader, yaml.Node | None]:
    loader = _Loader(text)
    try:
        return loader, loader.get_single_node()
    except BaseException:
        loader.dispose()
        raise


def _construct(loader: _Loader, node: yaml.Node) -> Any:
    """Python data from a measured node graph.

    Raises:
        _Limit: an integer too long for Python to read (over 4,300 digits).
        yaml.MarkedYAMLError: an unsafe tag (``!!python/object/apply:os.system``): SafeLoader
            has no constructor for it.
    """
    try:
        return loader.construct_document(node)
    except ValueError:  # int() refuses numbers of more than sys.get_int_max_str_digits()
        raise _Limit("numbers of at most 4,300 digits", "a longer one") from None


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
            a top level that is not a mapping, an alias bomb, or nesting past ``MAX_DEPTH``;
            each with its line.

    Example:
        >>> load_yaml("lr: 1e-5\\n", "x.yaml")
        ({'lr': 1e-05}, {'lr': 1})
    """
    try:
        loader, node = _compose(text)
    except _Limit as exc:
        raise ConfigError(source, [_problem("(yaml)", exc.expected, exc.got, exc.mark)]) from None
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
        expected = "a mapping of config keys (e.g. 'n_trials: 20')"
        if node is None:
            raise ConfigError(source, [_problem("(top level)", expected, "an empty file")])
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(source, [_problem("(top level)", expected, _kind(node), node.start_mark)])
        try:
            _measure(node)
            walker = _Walker()
            walker.walk(node, "", set())
            if walker.problems:
                raise ConfigError(source, walker.problems)
            data = _construct(loader, node)
        except _Limit as exc:
            raise ConfigError(source, [_problem("(yaml)", exc.expected, exc.got, exc.mark)]) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise ConfigError(
                source, [_problem("(yaml)", "plain YAML data (no !!python tags)", exc.problem, mark)]
            ) from None
        return data, walker.lines
    finally:
        loader.dispose()


def load_yaml_value(text: str) -> Any:
    """Parse one ``--set key=value`` value with the same rules and limits as config files
    (``1e-5`` is a float; no alias bombs, no deep nesting, no more than ``MAX_CONFIG_BYTES``).

    Raises:
        YamlValueError: the value is past a limit (``expected``/``got`` say which).
        ValueError: the text is not valid YAML (the caller knows which override it was).
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise YamlValueError(f"a value of at most {MAX_CONFIG_BYTES:,} bytes", "a longer one")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node)
        return _construct(loader, node)
    except _Limit as exc:
        raise YamlValueError(exc.expected, exc.got) from None
    except yaml.MarkedYAMLError as exc:
        # Only the problem: the full message quotes the text, which may hold a password.
        raise ValueError(exc.problem or "invalid YAML") from None
    except yaml.YAMLError:
        raise ValueError("invalid YAML") from None
    finally:
        loader.dispose()
