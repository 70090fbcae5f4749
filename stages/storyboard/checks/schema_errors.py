"""Schema errors as readable problems: pydantic's errors turned into one line each (key path,
bad value, what would be valid, "did you mean"), and the keys a storyboard may never contain."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from engine.suggest import did_you_mean
from stages.storyboard.problems import Problem
from stages.storyboard.schema import (
    Audio,
    Output,
    Segment,
    Shot,
    ShotDefaults,
    Storyboard,
    Transition,
)
from stages.storyboard.schema.camera import CameraKey, CameraMove
from stages.storyboard.yaml_source import KeyPath, YamlSource, format_key_path

# Keys that make Hydra or OmegaConf build objects or change composition; storyboards are data.
FORBIDDEN_KEYS = {"_target_", "_recursive_", "_convert_", "_partial_", "_args_"}


# Which model describes the mapping found at a (cleaned) key path; for "did you mean".
def _model_at(path: KeyPath, data: Any) -> type[BaseModel] | None:
    names = [p for p in path if isinstance(p, str)]
    if not path:
        return Storyboard
    if path[-1] == "defaults":
        return ShotDefaults
    if path[-1] == "output":
        return Output
    if path[-1] == "transition":
        return Transition
    if path == ("audio",):
        return Audio
    if names and names[-1] == "segments" and isinstance(path[-1], int):
        return Segment
    if names and names[-1] == "shots" and isinstance(path[-1], int) and len(path) == 2:
        return Shot
    if path[-1] == "camera":
        return CameraMove
    if names and names[-1] == "camera" and isinstance(path[-1], int):
        return CameraKey
    return None


def _clean_loc(loc: Sequence[Any], data: Any, missing: bool) -> KeyPath:
    """Drop pydantic's union tags and type names: keep only steps that exist in the data."""
    out: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, Mapping) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif last and missing and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _message(error: Mapping[str, Any], path: KeyPath, data: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        model = _model_at(path[:-1], data)
        allowed = list(model.model_fields) if model else []
        hint = did_you_mean(key, allowed)
        known = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key {key!r}{hint}{known}"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "too_short" and isinstance(value, list) and not value:
        return "must not be empty"
    field = path[-1] if path else None
    if field == "camera" and (kind in _SHAPE_ERRORS or kind.startswith("union_tag")):
        return (f"expected a constant move like {{zoom: 0.1}} or a list of keyframes like "
                f"[{{at: 0s, pan_x: 0}}, {{at: 4s, pan_x: 0.2}}], got {value!r}")
    if field == "post" and kind == "list_type":
        return f"expected a list of presets or stages, like [interpolate2x], got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys (key: value), got {value!r}"
    if kind == "list_type":
        return f"expected a list, got {value!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {value!r}"
    if kind in ("string_type", "str_type"):
        return f"expected text, got {value!r}"
    if kind == "literal_error":
        return f"{value!r} is not one of {error['ctx']['expected']}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}
    if kind in bounds:
        limit = next(iter(error["ctx"].values()))
        return f"{value!r} is out of range: must be {bounds[kind]} {limit}"
    return f"{error['msg']} (got {value!r})"


# "Wrong shape" errors: for a union (camera: a mapping or a list of keys) pydantic reports one per
# branch; when the value failed deeper inside the branch that fits, this one is noise.
_SHAPE_ERRORS = {"model_type", "model_attributes_type", "list_type", "dict_type"}


def pydantic_problems(exc: ValidationError, source: YamlSource, file: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    errors = [
        (error, _clean_loc(error["loc"], source.data, error["type"] == "missing"))
        for error in exc.errors()
    ]
    for error, path in errors:
        if error["type"] == "extra_forbidden" and path and path[-1] in FORBIDDEN_KEYS:
            continue  # reported once, by forbidden_keys
        if error["type"] in _SHAPE_ERRORS and any(
            len(other) > len(path) and other[: len(path)] == path for _, other in errors
        ):
            continue
        message = _message(error, path, source.data)
        key = (format_key_path(path), message)
        # A value failing every branch of a union yields one error per branch; keep the first.
        if key in seen or any(k[0] == key[0] for k in seen):
            continue
        seen.add(key)
        problems.append(Problem(file, key[0], message, source.line_of(path)))
    return problems


def forbidden_keys(data: Any, path: KeyPath = ()) -> Iterable[KeyPath]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in FORBIDDEN_KEYS:
                yield path + (key,)
            yield from forbidden_keys(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from forbidden_keys(value, path + (i,))
