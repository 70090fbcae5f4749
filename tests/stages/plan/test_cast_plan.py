"""Cast and keyframes in the plan: keys follow references and keyframes exactly; the seed rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.registry import engine_spec
from stages.plan.build import build_plan
from stages.plan.inputs import derive_seed
from stages.plan.keyframes import keyframe_engine_names
from stages.storyboard.validate import validate_storyboard
from tests.helpers.cast_boards import CAST_BOARD, write_cast_board


def plan_of(path: Path, engine: str = "preview"):
    vs = validate_storyboard(path, engine_spec(engine))
    names = keyframe_engine_names(vs)
    return build_plan(vs, {"engine": engine}, {}, None,
                      {n: ({"engine": n}, {}) for n in names})


def keys(plan) -> dict[str, list[str]]:
    return {s.id: [j.key for j in s.segments] + [k.key for k in s.keyframes] for s in plan.shots}


def test_prompts_are_expanded_and_cast_recorded(tmp_path):
    plan = plan_of(write_cast_board(tmp_path))
    s01, s02, s03 = plan.shots
    assert s01.segments[0].prompt == "an old lighthouse keeper climbs the stairs"
    assert s01.segments[0].cast == ("keeper",)
    assert s02.keyframes[0].prompt == "an old lighthouse keeper at the top at dusk"
    assert len(s01.segments[0].references) == 2 and s03.segments[0].references == ()
    assert s02.segments[0].start.kind == "keyframe"
    assert s02.segments[0].start_keyframe == s02.keyframes[0].key


def test_editing_a_reference_rerenders_exactly_the_shots_using_it(tmp_path):
    path = write_cast_board(tmp_path)
    before = keys(plan_of(path))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "keeper_side.png")
    after = keys(plan_of(path))
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {"s01", "s02"}
    assert all(a != b for a, b in zip(before["s01"], after["s01"]))


def test_keyframe_change_rerenders_exactly_its_shot(tmp_path):
    path = write_cast_board(tmp_path)
    before = plan_of(path)
    path.write_text(CAST_BOARD.replace("the sea at night", "the sea at noon"))
    after = plan_of(path)
    changed = {s.id for s, t in zip(before.shots, after.shots) if s.key != t.key}
    assert changed == {"s03"}
    assert before.shots[2].keyframes[0].key != after.shots[2].keyframes[0].key


def test_description_is_in_the_key(tmp_path):
    path = write_cast_board(tmp_path)
    before = keys(plan_of(path))
    path.write_text(CAST_BOARD.replace("an old lighthouse keeper", "a young keeper"))
    after = keys(plan_of(path))
    assert {s for s in before if before[s] != after[s]} == {"s01", "s02"}


def test_seed_rule_first_member_seed_base(tmp_path):
    plan = plan_of(write_cast_board(tmp_path))
    s01, _, s03 = plan.shots
    assert s01.segments[0].seed == derive_seed(77, "s01", 0)   # keeper's seed base
    assert s03.segments[0].seed == derive_seed(3, "s03", 0)    # no cast: the storyboard's
    path = write_cast_board(tmp_path, CAST_BOARD.replace("  - id: s01\n",
                                                         "  - id: s01\n    seed: 10\n"))
    assert plan_of(path).shots[0].segments[0].seed == 10      # the shot's own seed wins


def test_storyboards_without_cast_keep_their_keys():
    """Fields at their default stay out of the key: ep01 plans the keys it always had."""
    from flows.config.settings import post_presets
    from stages.storyboard.validate import ValidateOptions

    vs = validate_storyboard(Path("storyboards/ep01.yaml"), engine_spec("preview"),
                             ValidateOptions(post_presets=post_presets()))
    plan = build_plan(vs, {"engine": "preview", "v": 1}, {"motion": 1.0})
    assert plan.key == EP01_EPISODE_KEY
    assert not list(plan.keyframes())


EP01_EPISODE_KEY = "25026c5da047a8874e40e94f838417aef1e562eaf5c57adacd1b1dcbc61095b7"
