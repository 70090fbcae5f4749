"""`python -m flows.schema [PATH]`: write the JSON Schema of the storyboard format.

Editors with a YAML language server (VS Code's YAML extension, Neovim, JetBrains) then complete
keys and flag mistakes while the user types, given this first line in a storyboard:

    # yaml-language-server: $schema=storyboard.schema.json

PATH defaults to `storyboards/storyboard.schema.json`, next to the storyboards (the sample
storyboards reference it so). `--check` exits 1 when PATH differs from the current schema.

The schema comes from the pydantic models in stages/storyboard/schema/, so it cannot drift from what
validation accepts; where a value is parsed before it is checked (durations like "5s", "832x480"
resolutions, a transition given by name) the generator describes the written form instead of
the parsed one. Checks that need the whole file or the disk (duplicate ids, images, chaining)
are validation's; the editor shows the rest.

Every property carries its field's docstring as `description` (hover help). Names of installed
things are enums of what is installed when this runs: post presets (conf/post/*.yaml) in
`post:`, engines in `fallback:`, image engines in a keyframe's `engine:`; an inline post stage
`{stage: NAME, ...}` is checked against that registered stage's parameters. Validation does not
use this file: it checks those names itself, with did-you-mean hints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from stages.storyboard.schema import SHOT_ID, Storyboard
from stages.storyboard.schema.types import NAMES_OF

DEFAULT_PATH = Path("storyboards") / "storyboard.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SECONDS = r"^\s*[-+]?(\d+(\.\d+)?|\.\d+)\s*(ms|s)?\s*$"
DURATION = {"anyOf": [{"type": "number"},
                      {"type": "string", "pattern": _SECONDS,
                       "description": "seconds like '5s', '2.5s' or '500ms'"}]}
RESOLUTION = {"anyOf": [{"type": "string", "pattern": r"^\s*\d+\s*[xX]\s*\d+\s*$",
                         "description": "WIDTHxHEIGHT like '832x480', multiples of 16"},
                        {"type": "array", "items": {"type": "integer"}, "minItems": 2,
                         "maxItems": 2}]}


# Validators that parse seconds ('0.5s', '500ms' or a number): durations, times, the
# soundtrack's offset and fades, and audio-reactive decays.
_SECONDS_VALIDATORS = ("_duration", "_time", "_signed_seconds", "_fade", "_decay")


def _validator_name(schema) -> str:
    if schema.get("type") != "function-before":
        return ""
    return getattr(schema.get("function", {}).get("function"), "__name__", "")


class StoryboardSchema(GenerateJsonSchema):
    """Describes values as the user writes them where a validator parses them first: the
    validators are recognised by name (_SECONDS_VALIDATORS, `_resolution`, `_valid_id`,
    `_from_name`); tests/flows/test_schema.py notices when one is renamed."""

    def function_before_schema(self, schema) -> dict[str, Any]:
        name = _validator_name(schema)
        if name in _SECONDS_VALIDATORS:
            return dict(DURATION)
        if name == "_resolution":
            return dict(RESOLUTION)
        if name == "_valid_id":
            return {"type": "string", "pattern": SHOT_ID.pattern,
                    "description": "1-64 of a-z, 0-9, '_' and '-'"}
        return super().function_before_schema(schema)

    def model_schema(self, schema) -> dict[str, Any]:
        result = super().model_schema(schema)
        if _validator_name(schema.get("schema", {})) == "_from_name":
            # A transition may be written as its type alone: `transition: crossfade`.
            kinds = result.get("properties", {}).get("type", {}).get("enum")
            name_only = {"type": "string", "description": "the type alone, with its defaults"}
            if kinds:
                name_only["enum"] = kinds
            return {"anyOf": [name_only, result]}
        return result


def _post_stage_schemas(defs: dict[str, Any]) -> list[dict[str, Any]]:
    """One `{stage: NAME, ...params}` schema per registered post stage (into `defs`), from the
    stage's params model. A parameter its model leaves undocumented gets a generic description
    (stages/post/ owns those models)."""
    from stages.post.registry import STAGES, load_builtin_stages

    load_builtin_stages()
    variants = []
    for name in sorted(STAGES):
        params = STAGES[name].params
        schema = params.model_json_schema(ref_template="#/$defs/{model}",
                                          schema_generator=StoryboardSchema)
        defs.update(schema.pop("$defs", {}))
        properties = schema.get("properties", {})
        for key, prop in properties.items():
            if not prop.get("description"):
                default = f" (default {json.dumps(prop['default'])})" if "default" in prop else ""
                prop["description"] = f"`{name}` stage parameter `{key}`{default}."
        doc = STAGES[name].doc
        stage = {"const": name, "description": f"the post stage: {name}"}
        defs[f"PostStage_{name}"] = {
            "type": "object",
            "title": f"post stage {name}",
            "description": doc or f"inline `{name}` post stage with its parameters",
            "properties": {"stage": stage, **properties},
            "required": ["stage", *schema.get("required", [])],
            "additionalProperties": False,
        }
        variants.append({"$ref": f"#/$defs/PostStage_{name}"})
    return variants


def installed_names() -> dict[str, list[str]]:
    """What `NamesOf` marks name, as installed now."""
    from engine.registry import available_engines, engines_where
    from flows.config.settings import post_presets

    return {"post_preset": sorted(post_presets()), "engine": available_engines(),
            "image_engine": engines_where(lambda spec: spec.makes_images)}


def _fill_names(node: Any, names: dict[str, list[str]], defs: dict[str, Any]) -> Any:
    """Replace each `NamesOf` mark by the installed names (or the inline stage variants)."""
    if isinstance(node, list):
        return [_fill_names(item, names, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _fill_names(value, names, defs) for key, value in node.items()}
    kind = node.pop(NAMES_OF, None)
    if kind == "post_stage":
        return {"type": "object", "description": "an inline stage: {stage: NAME, ...parameters}",
                "required": ["stage"], "oneOf": _post_stage_schemas(defs)}
    if kind is not None:
        node["enum"] = names[kind]
    return node


def storyboard_schema() -> dict[str, Any]:
    schema = Storyboard.model_json_schema(schema_generator=StoryboardSchema)
    names, stage_defs = installed_names(), {}
    schema = _fill_names(schema, names, stage_defs)
    schema["$defs"] = {**schema.get("$defs", {}), **stage_defs}
    return {"$schema": DIALECT, "title": "reelforge storyboard",
            **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    return json.dumps(storyboard_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.schema", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH),
                        help=f"where to write the schema (default {DEFAULT_PATH})")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if PATH is missing or out of date")
    args = parser.parse_args(argv)
    path = Path(args.path)
    text = schema_text()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            print(f"{path} is out of date; run `python -m flows.schema {path}`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    from stages.media.atomic import atomic_write_text

    atomic_write_text(path, text)
    print(f"wrote {path} ({len(text)} bytes); reference it from a storyboard's first line: "
          f"# yaml-language-server: $schema={path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
