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
    # If this fails after a change to stages/storyboard/schema.py: python -m flows.schema
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
        {"id": "b", "prompt": "y", "duration": 2, "transition": {"type": "cut"}}]}
    assert [e.message for e in validator.iter_errors(data)] == []
