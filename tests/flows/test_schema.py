"""`python -m flows.schema`: the JSON Schema editors use to complete and check storyboards."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from flows.schema import main, storyboard_schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "storyboards").glob("*.yaml"))
COMMENT = "# yaml-language-server: $schema=storyboard.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = storyboard_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_writes_the_schema_file(tmp_path, capsys):
    target = tmp_path / "sub" / "storyboard.schema.json"
    assert main([str(target)]) == 0
    assert json.loads(target.read_text()) == storyboard_schema()
    assert main(["--check", str(target)]) == 0
    target.write_text("{}")
    assert main(["--check", str(target)]) == 1
    assert "python -m flows.schema" in capsys.readouterr().err


def test_the_committed_schema_is_up_to_date():
    # If this fails after a change to stages/storyboard/schema/: python -m flows.schema
    assert main(["--check", str(ROOT / "storyboards" / "storyboard.schema.json")]) == 0


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_storyboards_validate_against_it(validator, path):
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_storyboards_reference_it(path):
    assert path.read_text().splitlines()[0] == COMMENT


@pytest.mark.parametrize("data,where", [
    ({"shots": [{"id": "a", "promt": "x", "duration": "1s"}]}, ["shots", 0]),
    ({"shots": [{"id": "a", "prompt": "x", "duration": "5 seconds"}]}, ["shots", 0, "duration"]),
    ({"resolution": "832*480", "shots": [{"id": "a", "prompt": "x"}]}, ["resolution"]),
    ({"shots": [{"id": "Bad Id", "prompt": "x"}]}, ["shots", 0, "id"]),
    ({"shots": [{"id": "a", "transition": "wipe"}]}, ["shots", 0, "transition"]),
    ({"fps": 0, "shots": [{"id": "a"}]}, ["fps"]),
    ({"shots": []}, ["shots"]),
])
def test_editors_see_the_mistakes(validator, data, where):
    paths = [list(e.absolute_path) for e in validator.iter_errors(data)]
    assert any(p[:len(where)] == where for p in paths), paths


def test_written_forms_that_validation_accepts_are_accepted(validator):
    data = {"resolution": "256x144", "shots": [
        {"id": "a", "prompt": "x", "duration": "500ms", "transition": "crossfade",
         "camera": [{"at": "0s", "pan_x": 0}, {"at": 0.5, "pan_x": 0.1, "ease": "in_out"}]},
        {"id": "b", "prompt": "y", "duration": 2, "transition": {"type": "cut"}}],
        "audio": {"path": "m.wav", "offset": "-1.5s", "fade_in": "500ms", "fade_out": 2,
                  "reactive": [{"param": "zoom", "source": "beats", "amount": 0.04,
                                "decay": "0.25s"}]}}
    assert [e.message for e in validator.iter_errors(data)] == []


def _properties(node, path="#"):
    """(path, name, property schema) of every property anywhere in a schema."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{path}/properties", name, prop
        for key, value in node.items():
            yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{path}/{i}")


def test_every_property_has_a_description():
    # Hover help in editors: a field without a docstring (stages/storyboard/schema/) fails here.
    missing = [f"{path}/{name}" for path, name, prop in _properties(storyboard_schema())
               if not (isinstance(prop, dict) and str(prop.get("description", "")).strip())]
    assert missing == []


def test_every_storyboard_field_documents_itself():
    # The storyboard models' own docs, not a generated fallback (that is only for post stages).
    from pydantic import BaseModel

    import stages.storyboard.schema as models

    undocumented = [f"{cls.__name__}.{name}" for cls in vars(models).values()
                    if isinstance(cls, type) and issubclass(cls, BaseModel)
                    and cls.__module__.startswith("stages.storyboard")
                    for name, field in cls.model_fields.items() if not field.description]
    assert undocumented == []


def test_every_builtin_post_stage_parameter_documents_itself():
    # Each stage's params model (stages/post/) describes its own fields; the generated fallback
    # in flows.schema is for stages registered from outside this repository.
    from stages.post.registry import STAGES, load_builtin_stages

    load_builtin_stages()
    undocumented = [f"{name}.{key}" for name, stage in sorted(STAGES.items())
                    if stage.params.__module__.startswith("stages.post")
                    for key, field in stage.params.model_fields.items() if not field.description]
    assert undocumented == []


def test_installed_names_are_enums():
    from engine.registry import available_engines
    from flows.config.settings import post_presets

    schema = storyboard_schema()
    text = json.dumps(schema)
    assert "x-reelforge" not in text  # every NamesOf mark was filled in
    post_item = schema["properties"]["post"]["anyOf"][0]["items"]["anyOf"]
    assert post_item[0]["enum"] == sorted(post_presets()) and "svi_pro" in post_item[0]["enum"]
    assert schema["properties"]["fallback"]["anyOf"][0]["enum"] == available_engines()
    engine = schema["$defs"]["KeyframeGen"]["properties"]["engine"]["anyOf"][0]["enum"]
    assert "sdxl" in engine and "wan21_t2v" not in engine


@pytest.mark.parametrize("item,ok", [
    ("svi_pro", True), ("interpolate2", False),
    ({"stage": "upscale", "factor": 2}, True), ({"stage": "upscale", "factr": 2}, False),
    ({"stage": "smooth", "strength": 0.2, "window": 3}, True),
    ({"stage": "upscale", "filter": "nearest"}, False), ({"stage": "no_such_stage"}, False),
    ({"factor": 2}, False),
])
def test_post_items_are_typed(validator, item, ok):
    data = {"shots": [{"id": "a", "prompt": "x"}], "post": [item]}
    assert (list(validator.iter_errors(data)) == []) is ok


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "post").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_preset_chains_fit_the_inline_stage_schema(validator, path):
    chain = (yaml.safe_load(path.read_text()) or {}).get("chain") or []
    data = {"shots": [{"id": "a", "prompt": "x"}], "post": chain}
    assert [e.message for e in validator.iter_errors(data)] == []
