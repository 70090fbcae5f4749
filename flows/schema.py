"""`python -m flows.schema [PATH]`: write the JSON Schema of the storyboard format.

Editors with a YAML language server (VS Code's YAML extension, Neovim, JetBrains) then complete
keys and flag mistakes while the user types, given this first line in a storyboard:

    # yaml-language-server: $schema=storyboard.schema.json

PATH defaults to `storyboards/storyboard.schema.json`, next to the storyboards (the sample
storyboards reference it so). `--check` exits 1 when PATH differs from the current schema.

The schema comes from the pydantic models in stages/storyboard/schema.py, so it cannot drift from what
validation accepts; where a value is parsed before it is checked (durations like "5s", "832x480"
resolutions, a transition given by name) the generator describes the written form instead of
the parsed one. Checks that need the whole file or the disk (duplicate ids, images, chaining)
are validation's; the editor shows the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from stages.storyboard.schema import SHOT_ID, Storyboard

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


def _validator_name(schema) -> str:
    if schema.get("type") != "function-before":
        return ""
    return getattr(schema.get("function", {}).get("function"), "__name__", "")


class StoryboardSchema(GenerateJsonSchema):
    """Describes values as the user writes them where a validator parses them first: the
    validators are recognised by name (`_duration`, `_time`, `_resolution`, `_valid_id`,
    `_from_name`); tests/flows/test_schema.py notices when one is renamed."""

    def function_before_schema(self, schema) -> dict[str, Any]:
        name = _validator_name(schema)
        if name in ("_duration", "_time"):
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


def storyboard_schema() -> dict[str, Any]:
    schema = Storyboard.model_json_schema(schema_generator=StoryboardSchema)
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
