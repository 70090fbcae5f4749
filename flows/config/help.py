"""`--help` of `python -m flows.render`, `flows.series` and `flows.enhance`, generated from what
is installed: the storyboard keys from the pydantic models (their field docstrings, the same text
the JSON Schema's hover help shows), the overrides from the comments in conf/config.yaml,
conf/output/default.yaml and conf/enhance/enhance.yaml, the presets in conf/post/, the engines
in conf/engine/ and the registered post stages. The CLIs print it instead of Hydra's stock help
(which lists every config group, enhance and series included); `--hydra-help` is still Hydra's.
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel

from flows.config.settings import CONF_DIR, post_presets

HELP_FLAGS = ("--help", "-h")
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*?)\s*(#\s?(?P<doc>.*))?$")
_COMMENT_LINE = re.compile(r"^(?P<indent> *)#\s?(?P<doc>.*)$")


def asks_for_help(argv: list[str] | None = None) -> bool:
    """`--help` or `-h` on the command line (Hydra's own help is `--hydra-help`)."""
    argv = sys.argv if argv is None else argv
    return any(arg in HELP_FLAGS for arg in argv[1:])


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 110))


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _rows(rows: Iterable[tuple[str, str]], indent: int = 2) -> list[str]:
    """`name  description` rows, the descriptions wrapped under each other."""
    rows = list(rows)
    if not rows:
        return []
    column = min(max(len(name) for name, _ in rows) + indent + 2, 34)
    width = _width()
    lines = []
    for name, text in rows:
        head = " " * indent + name
        if len(head) + 2 > column:
            lines.append(head)
            head = ""
        wrapped = textwrap.wrap(_one_line(text), width - column) or [""]
        lines.append(head.ljust(column) + wrapped[0])
        lines += [" " * column + more for more in wrapped[1:]]
    return lines


def yaml_keys(path: Path, prefix: str = "", skip: tuple[str, ...] = ("defaults", "hydra")
              ) -> list[tuple[str, str, str]]:
    """(dotted key, default, comment) of every key of a config file, from its comments: the
    inline one (continued by comment lines indented past the key), else the comment lines just
    above the key."""
    out: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    skipping = None
    inline = False  # the last key had an inline comment that following lines may continue
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _KEY_LINE.match(line)
        if match is None:
            comment = _COMMENT_LINE.match(line)
            if comment is None or skipping is not None:
                pending, inline = [], False
            elif inline and stack and len(comment["indent"]) > stack[-1][0]:
                key, value, doc = out[-1]
                out[-1] = (key, value, f"{doc} {comment['doc'].strip()}")
            else:
                pending.append(comment["doc"].strip())
                inline = False
            continue
        indent = len(match["indent"])
        if skipping is not None:
            if indent > skipping:
                continue
            skipping = None
        if indent == 0 and match["key"] in skip:
            skipping, pending = 0, []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        dotted = prefix + ".".join(key for _, key in stack)
        inline = bool(match["doc"])
        doc = (match["doc"] or "").strip() if inline else " ".join(pending)
        out.append((dotted, match["value"].strip(), doc))
        pending = []
    return out


def _header(path: Path) -> str:
    """The leading comment of a config file, as one line."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        if not text or text.startswith(("Weights:", "hf ", "python ")):
            break
        lines.append(text)
    return " ".join(lines)


def _presets() -> list[tuple[str, str]]:
    rows = []
    for name, chain in post_presets().items():
        stages = " > ".join(str(item.get("stage")) for item in chain if isinstance(item, dict))
        rows.append((name, f"{_header(CONF_DIR / 'post' / f'{name}.yaml')} "
                           f"[{stages or 'no stages'}]"))
    return rows


def _engines() -> list[tuple[str, str]]:
    from engine.registry import available_engines

    configs = {p.stem: p for p in (CONF_DIR / "engine").glob("*.yaml")}
    rows = []
    for name in sorted(set(configs) | set(available_engines())):
        about = _header(configs[name]) if name in configs else "(registered; no conf/engine/ file)"
        rows.append((name, about))
    return rows


def _stages() -> list[tuple[str, str]]:
    from stages.post.registry import STAGES, load_builtin_stages

    load_builtin_stages()
    rows = []
    for name in sorted(STAGES):
        params = STAGES[name].params
        doc = _one_line(STAGES[name].doc)
        keys = ", ".join(f"{key}={field.default!r}" if field.default is not None else key
                         for key, field in params.model_fields.items())
        rows.append((name, f"{doc} Parameters: {keys}." if doc else f"parameters: {keys}."))
    return rows


def _fields(model: type[BaseModel], exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    skip = set(exclude)
    return [(name, field.description or "") for name, field in model.model_fields.items()
            if name not in skip]


def storyboard_keys() -> list[str]:
    """The storyboard format, key by key, from the models' field docstrings."""
    from stages.storyboard.schema import GenerationKeys, Segment, Shot, ShotDefaults, Storyboard

    shot_only = [n for n in Shot.model_fields if n not in ShotDefaults.model_fields]
    generation = list(GenerationKeys.model_fields)
    lines = ["Storyboard keys (storyboards/NAME.yaml; the JSON Schema for editors: "
             "storyboards/storyboard.schema.json):", "  top level:"]
    lines += _rows(_fields(Storyboard), indent=4)
    lines += ["  each shot (`shots:` items; every key but id, start, segments, seed and prompts "
              "may also go in `defaults:`):"]
    shot_rows = _fields(Shot)
    lines += _rows([row for row in shot_rows if row[0] in shot_only]
                   + [row for row in shot_rows if row[0] not in shot_only], indent=4)
    lines += ["  each segment (`segments:` items of a long shot; also the generation keys "
              f"{', '.join(generation)}):"]
    lines += _rows([row for row in _fields(Segment) if row[0] not in generation], indent=4)
    return lines


def _overrides() -> list[str]:
    rows = [("storyboard=NAME", "storyboards/NAME.yaml, or a path to a .yaml file"),
            ("engine=NAME", "engine config from conf/engine/ (below); its keys as "
             "engine.model=PATH, engine.params.KEY=VALUE, engine.options.KEY=VALUE"),
            ("post=PRESET", "post chain preset from conf/post/ (below); on the command line it "
             "beats the storyboard's `post:`")]
    for key, value, doc in yaml_keys(CONF_DIR / "output" / "default.yaml", "output."):
        rows.append((f"{key}={value}", f"{doc} (a storyboard's `output:` wins)"))
    for key, value, doc in yaml_keys(CONF_DIR / "config.yaml"):
        if key == "storyboard" or not doc and not value:
            continue
        rows.append((f"{key}={value}" if value else f"{key}.*", doc))
    rows.append(("-m KEY=A,B", "Hydra multirun: one render per combination "
                 "(renders/NAME/<overrides>/)"))
    rows.append(("--debug", "print tracebacks (also REELFORGE_DEBUG=1)"))
    rows.append(("--cfg job", "print the composed config and exit (Hydra); --hydra-help: "
                 "Hydra's own help"))
    return ["Overrides (key=value, conf/config.yaml; any config key works):"] + _rows(rows)


def _installed(engines: bool = True) -> list[str]:
    lines = ["Post presets (conf/post/; post=NAME, or names in a storyboard's `post:` list):"]
    lines += _rows(_presets())
    lines += ["", "Post stages (inline in a `post:` list: {stage: NAME, KEY: VALUE, ...}):"]
    lines += _rows(_stages())
    if engines:
        lines += ["", "Engines (conf/engine/; engine=NAME, a storyboard's `fallback:`, "
                  "keyframes.engine=NAME):"]
        lines += _rows(_engines())
    return lines


def render_help() -> str:
    lines = ["usage: python -m flows.render storyboard=NAME [key=value ...] [--debug]", "",
             "Render storyboards/NAME.yaml into <output_dir>/NAME/: the episode NAME.mp4, "
             "shots/, frames/, contact_sheet.png, manifest.json, report.html.",
             "Exit status: 0 rendered (or planned); 2 invalid storyboard or config, nothing "
             "written; 1 a render failed (rerun to resume); 130 Ctrl-C; 143 SIGTERM.", ""]
    lines += _overrides() + [""] + _installed() + [""] + storyboard_keys()
    lines += ["", "More: README.md. Examples:",
              "  python -m flows.render storyboard=ep01 dry_run=true",
              "  python -m flows.render storyboard=ep01 engine=wan22_i2v_a14b "
              "engine.model=/models/Wan2.2-I2V-A14B-Diffusers profile=draft shots=[s01]"]
    return "\n".join(lines) + "\n"


def _series_rows() -> list[tuple[str, str]]:
    return [(path.stem, _header(path)) for path in sorted((CONF_DIR / "series").glob("*.yaml"))]


def series_help() -> str:
    lines = ["usage: python -m flows.series series=NAME [key=value ...] [--debug]", "",
             "Render every episode of conf/series/NAME.yaml (unchanged episodes come from the "
             "cache), then publish them. Every render override below applies to each episode.",
             "Exit status: 0 every episode rendered; 1 an episode or the run failed (rerun to "
             "resume); 2 invalid series or config; 130 Ctrl-C; 143 SIGTERM.", "",
             "Series (conf/series/):"]
    lines += _rows(_series_rows())
    lines += ["", "Series keys (series.KEY=VALUE):"]
    lines += _rows([
        ("series.episodes", "storyboard names, paths or globs (\"ep*\")"),
        ("series.render_deployment", "FLOW/DEPLOYMENT: each episode runs on a worker of that "
         "deployment's work pool; null: here, one after another"),
        ("series.publish.dir", "copy each finished episode to this folder"),
        ("series.publish.command", "run this argument list after each episode ({video} "
         "{episode} {contact_sheet} {manifest} {folder} are replaced)"),
        ("series.publish.timeout_s", "seconds the publish command may take"),
        ("series.publish.force", "publish again although the episode did not change"),
    ])
    lines += [""] + _overrides() + [""] + _installed() + [""] + storyboard_keys()
    return "\n".join(lines) + "\n"


def enhance_help() -> str:
    lines = ["usage: python -m flows.enhance input=IN.mp4 output=OUT.mp4 post=PRESET "
             "[key=value ...] [--debug]", "",
             "Run a post chain (the stages a render uses) on an existing video.",
             "Exit status: 0 written; 2 invalid options, nothing written; 1 it failed; "
             "130 Ctrl-C; 143 SIGTERM.", "",
             "Options (conf/enhance/enhance.yaml):"]
    lines += _rows((f"{key}={value}", doc)
                   for key, value, doc in yaml_keys(CONF_DIR / "enhance" / "enhance.yaml"))
    lines += ["", *_installed(engines=False)]
    lines += ["", "Examples:",
              "  python -m flows.enhance input=clip.mp4 output=out.mp4 post=svi_pro",
              "  python -m flows.enhance input=clip.mp4 output=out.mp4 post=[smooth,interpolate2x]",
              "  python -m flows.enhance input=clip.mp4 output=out.mkv "
              "'stages=[{stage: upscale, factor: 1.5}]'"]
    return "\n".join(lines) + "\n"


HELP = {"render": render_help, "series": series_help, "enhance": enhance_help}


def _wrapped(text: str) -> str:
    """Long lines wrapped to the terminal (the tables are wrapped already)."""
    width = _width()
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    " if line.startswith("  ")
                                    else "") if len(line) > width and not line.startswith(" " * 4)
                      else line for line in text.splitlines()) + "\n"


def print_help(command: str) -> int:
    """Print the help of `command` (render, series, enhance); the exit status (0)."""
    sys.stdout.write(_wrapped(HELP[command]()))
    return 0
