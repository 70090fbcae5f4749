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


# libyaml composes about twice as fast as the pure-Python parser (50,000 shots: 4.6 s against
# 8.2 s measured here); files it rejects are parsed again by the Python one for its messages.
_FastLoader = getattr(yaml, "CSafeLoader", None)

# A storyboard is a few hundred values; aliases that repeat large parts of the file (a "billion
# laughs" file) could expand it without bound, so the expanded size is capped. The file's size
# is capped before parsing, so a huge file is refused at once instead of after a long parse.
MAX_VALUES = 100_000
MAX_FILE_BYTES = 1_000_000


class _Walk:
    """What one parse has seen: the collections being built (to catch an alias that refers to
    itself), the collections already built (a second visit is an alias expansion) and how many
    values the expansion has produced so far."""

    def __init__(self) -> None:
        self.active: set[int] = set()
        self.built: set[int] = set()
        self.aliased = False
        self.values = 0


def _construct(node: yaml.Node, loader: yaml.SafeLoader, path: KeyPath, lines: dict,
               walk: _Walk) -> Any:
    lines[path] = node.start_mark.line + 1
    walk.values += 1
    if walk.values > MAX_VALUES:
        why = ("YAML aliases (*name) repeat large parts of it" if walk.aliased else
               "split a series into episodes of at most a few thousand shots")
        raise yaml.constructor.ConstructorError(
            None, None, f"the file expands to more than {MAX_VALUES} values; a storyboard holds "
            f"far fewer ({why})", node.start_mark)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in walk.active:
            raise yaml.constructor.ConstructorError(
                None, None, "cyclic reference: a YAML alias (*name) refers to the collection "
                "that contains it", node.start_mark)
        walk.aliased = walk.aliased or id(node) in walk.built
        walk.active.add(id(node))
        try:
            return _construct_collection(node, loader, path, lines, walk)
        finally:
            walk.active.discard(id(node))
            walk.built.add(id(node))
    return loader.construct_object(node, deep=True)


def _is_merge(key_node: yaml.Node) -> bool:
    return isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge"


def _construct_collection(node: yaml.Node, loader: yaml.SafeLoader, path: KeyPath, lines: dict,
                          walk: _Walk) -> Any:
    if isinstance(node, yaml.MappingNode):
        # Merge keys by the YAML rules (PyYAML's own flattening lets a later source win):
        # explicit keys override merged ones, and in `<<: [*a, *b]` the earlier source wins.
        # Only an explicit key written twice is a duplicate.
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not _is_merge(key_node):
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                else [value_node]
            for source in reversed(sources):
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, "a merge key (<<) takes a mapping or a list of mappings",
                        source.start_mark)
                out.update(_construct(source, loader, path, lines, walk))
        lines[path] = node.start_mark.line + 1
        explicit: set[Any] = set()
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            key = loader.construct_object(key_node, deep=True)
            if key in explicit:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            explicit.add(key)
            out[key] = _construct(value_node, loader, path + (key,), lines, walk)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    return [_construct(child, loader, path + (i,), lines, walk)
            for i, child in enumerate(node.value)]


def _compose(text: str) -> tuple[yaml.SafeLoader, yaml.Node | None]:
    """The node tree, by libyaml when it accepts the text, else by the Python parser (which
    raises the errors with the messages users see)."""
    if _FastLoader is not None:
        fast = _FastLoader(text)
        try:
            return fast, fast.get_single_node()
        except yaml.YAMLError:
            fast.dispose()
    loader = _SafeLineLoader(text)
    return loader, loader.get_single_node()


def parse_yaml(text: str, path: Path) -> YamlSource:
    """Parse YAML text (one document) into plain Python data with line numbers."""
    lines: dict[KeyPath, int] = {}
    loader = None
    try:
        loader, node = _compose(text)
        data = None if node is None else _construct(node, loader, (), lines, _Walk())
    except yaml.reader.ReaderError as exc:  # a control character (NUL, ...) anywhere in the text
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlSyntaxError(path, line, column, f"character #x{exc.character:04x} is not "
                              "allowed in YAML (is this a text file?)") from None
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
        if loader is not None:
            loader.dispose()
    return YamlSource(path=path, data=data, lines=lines)


def load_yaml(path: Path) -> YamlSource:
    size = Path(path).stat().st_size
    if size > MAX_FILE_BYTES:
        raise YamlSyntaxError(Path(path), None, None, f"the file is {size / 1e6:.1f} MB; a "
                              f"storyboard may be at most {MAX_FILE_BYTES / 1e6:g} MB (a few "
                              f"thousand shots): split a long series into episodes")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(Path(path), None, None, f"not UTF-8 text ({exc.reason})") from None
    return parse_yaml(text, Path(path))
