"""Load a storyboard YAML file as plain data, remembering where every key came from.

Storyboards are data: this uses PyYAML's safe loader (no tags that build objects) and no
OmegaConf, so `${...}` in a prompt stays text. Each value's line is kept so that validation
errors can say `ep01.yaml:14` next to the key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# A key path as a tuple: ("shots", 2, "segments", 0, "duration").
KeyPath = tuple[Any, ...]


def format_key_path(path: KeyPath) -> str:
    """("shots", 2, "duration") -> "shots[2].duration"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<top level>"


@dataclass
class YamlSource:
    """Parsed YAML data plus the 1-based line of every key path in it."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of `key_path`, or of its nearest ancestor that has one."""
        path = tuple(key_path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


class YamlSyntaxError(ValueError):
    """The file is not valid YAML; carries the line and column of the problem."""

    def __init__(self, path: Path, line: int | None, column: int | None, problem: str):
        self.path, self.line, self.column, self.problem = path, line, column, problem
        where = f"{path}"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: YAML syntax error: {problem}")


class _SafeLineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent overwrite hides a user's mistake)."""


# A storyboard is a few hundred values; aliases that repeat large parts of the file (a "billion
# laughs" file) could expand it without bound, so the expanded size is capped.
MAX_VALUES = 100_000


class _Walk:
    """What one parse has seen: the collections being built (to catch an alias that refers to
    itself) and how many values the expansion has produced so far."""

    def __init__(self) -> None:
        self.active: set[int] = set()
        self.values = 0


def _construct(node: yaml.Node, loader: yaml.SafeLoader, path: KeyPath, lines: dict,
               walk: _Walk) -> Any:
    lines[path] = node.start_mark.line + 1
    walk.values += 1
    if walk.values > MAX_VALUES:
        raise yaml.constructor.ConstructorError(
            None, None, f"the file expands to more than {MAX_VALUES} values (YAML aliases that "
            "repeat large parts of it?)", node.start_mark)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in walk.active:
            raise yaml.constructor.ConstructorError(
                None, None, "cyclic reference: a YAML alias (*name) refers to the collection "
                "that contains it", node.start_mark)
        walk.active.add(id(node))
        try:
            return _construct_collection(node, loader, path, lines, walk)
        finally:
            walk.active.discard(id(node))
    return loader.construct_object(node, deep=True)


def _construct_collection(node: yaml.Node, loader: yaml.SafeLoader, path: KeyPath, lines: dict,
                          walk: _Walk) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            out[key] = _construct(value_node, loader, path + (key,), lines, walk)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    return [_construct(child, loader, path + (i,), lines, walk)
            for i, child in enumerate(node.value)]


def parse_yaml(text: str, path: Path) -> YamlSource:
    """Parse YAML text (one document) into plain Python data with line numbers."""
    try:
        loader = _SafeLineLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character (NUL, ...) anywhere in the text
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlSyntaxError(path, line, column, f"character #x{exc.character:04x} is not "
                              "allowed in YAML (is this a text file?)") from None
    lines: dict[KeyPath, int] = {}
    try:
        node = loader.get_single_node()
        data = None if node is None else _construct(node, loader, (), lines, _Walk())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        start = exc.context_mark
        if mark is not None and start is not None and start.line != mark.line:
            # An unclosed quote or bracket is found only at the end of the file: say where it began.
            problem += f" (it began at line {start.line + 1}, column {start.column + 1})"
        raise YamlSyntaxError(
            path, mark.line + 1 if mark else None, mark.column + 1 if mark else None, problem
        ) from None
    except yaml.YAMLError as exc:  # errors without a position
        raise YamlSyntaxError(path, None, None, str(exc)) from None
    except RecursionError:  # thousands of nested brackets
        raise YamlSyntaxError(path, None, None, "the file nests lists or mappings too deeply "
                              "to be a storyboard") from None
    finally:
        loader.dispose()
    return YamlSource(path=path, data=data, lines=lines)


def load_yaml(path: Path) -> YamlSource:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(Path(path), None, None, f"not UTF-8 text ({exc.reason})") from None
    return parse_yaml(text, Path(path))
