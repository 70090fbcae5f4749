"""What the Prefect UI shows of a render: the flow run's name and tags, its UI URL, and the
pictures artifact (contact sheet and per-shot thumbnails, inlined).

Names: `ep01`, `ep01 [engine=wan21_t2v]` for a multirun variant, `series demo` for a series run
and `demo/ep01` for its episodes. Tags: `reelforge`, `storyboard:NAME`, `engine:NAME`, and
`series:NAME` on a series run and its episode runs, so an automation that matches `reelforge`
fires for command-line runs and deployment runs alike. The flow labels its own run once it knows
the storyboard (`label_run`), so every way of starting it gets the same name and tags.

The Prefect UI renders a markdown artifact's images, including `data:` URIs; an image artifact
needs a URL the browser can reach, which a render on a workstation does not have. So the
pictures travel inside the markdown as small JPEG thumbnails, capped in size (PICTURES_MAX_BYTES).
"""

from __future__ import annotations

import base64
import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from flows.runtime.local_api import SHARED_URL_ENV  # the shared API serves no UI

log = logging.getLogger(__name__)

TAG = "reelforge"
SERIES_TAG = "series:"
SHEET_MAX_WIDTH = 720  # the contact sheet, inlined
THUMB_MAX_WIDTH = 160  # each shot thumbnail, inlined
THUMBS_PER_SHOT = 4  # first, last and evenly between: report.html has them all
PICTURES_MAX_BYTES = 600_000  # the whole pictures artifact; thumbnails past it are left out


def run_name(storyboard: str, variant: str | None = None, series: str | None = None) -> str:
    name = f"{series}/{storyboard}" if series else storyboard
    return f"{name} [{variant}]" if variant else name


def render_tags(storyboard: str, engine: str, series: str | None = None) -> list[str]:
    tags = [TAG, f"storyboard:{storyboard}", f"engine:{engine}"]
    return tags + [f"{SERIES_TAG}{series}"] if series else tags


def series_tags(series: str) -> list[str]:
    return [TAG, f"{SERIES_TAG}{series}"]


def _run_context():
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run if context is not None else None


def current_series() -> str | None:
    """The series this run is an episode of: its `series:NAME` tag (given by the series run, as
    a tag context for an in-process episode, or as run_deployment's tags for a worker's)."""
    run = _run_context()
    for tag in (run.tags if run is not None else ()):
        if tag.startswith(SERIES_TAG):
            return tag[len(SERIES_TAG):]
    return None


def label_run(name: str, tags: Iterable[str]) -> None:
    """Rename the current flow run and add `tags` (kept: the tags it had). A failure is a
    warning: the render matters more than its label."""
    run = _run_context()
    if run is None:
        return
    merged = list(dict.fromkeys([*run.tags, *tags]))
    try:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, name=name, tags=merged)
        run.name, run.tags = name, merged
    except Exception as exc:  # noqa: BLE001 - the API hiccuped; the render goes on
        log.warning("could not name the Prefect flow run %r (%s)", name, exc)


def run_url() -> str | None:
    """The Prefect UI's page for the current flow run, when a UI is known: PREFECT_UI_URL, or
    the one Prefect derives from PREFECT_API_URL. None for Prefect's temporary server and
    reelforge's shared local API (both serve no UI, and stop when idle)."""
    run = _run_context()
    if run is None:
        return None
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    explicit_ui = bool(os.environ.get("PREFECT_UI_URL"))
    api = PREFECT_API_URL.value()
    if not explicit_ui and (not api or api == os.environ.get(SHARED_URL_ENV)):
        return None
    base = PREFECT_UI_URL.value()
    if not base:
        return None
    return f"{base.rstrip('/')}/runs/flow-run/{run.id}"


# --- pictures --------------------------------------------------------------------------------


def data_uri(path: Path, max_width: int, quality: int = 72) -> str | None:
    """A small JPEG of the image at `path` as a data: URI; None when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.width > max_width:
                image = image.resize((max_width, max(1, round(image.height * max_width
                                                                  / image.width))))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True)
    except (OSError, ValueError) as exc:
        log.warning("no thumbnail of %s (%s)", path, exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def md_cell(text: Any) -> str:
    """`text` as one markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def pictures_markdown(title: str, sheet: Path | None, thumbs: Mapping[str, Sequence[Path]],
                      url: str | None = None, limit: int = PICTURES_MAX_BYTES) -> str:
    """Markdown with the contact sheet and a table of each shot's thumbnails, inlined."""
    from stages.outputs.contact_sheet import sample_indices

    lines = [f"# {title}", ""]
    used = 0
    if url:
        lines += [f"[This run in the Prefect UI]({url})", ""]
    sheet_uri = data_uri(sheet, SHEET_MAX_WIDTH) if sheet is not None else None
    if sheet_uri:
        lines += ["## Contact sheet", "", f"![contact sheet of {md_cell(title)}]({sheet_uri})", ""]
        used += len(sheet_uri)
    left_out = 0
    rows = []
    for shot, paths in thumbs.items():
        cells = []
        paths = list(paths)  # the first, the last and evenly between (as the contact sheet)
        for path in (paths[i] for i in sample_indices(len(paths), THUMBS_PER_SHOT)):
            uri = data_uri(Path(path), THUMB_MAX_WIDTH, quality=65)
            if uri is None:
                continue
            if used + len(uri) > limit:
                left_out += 1
                continue
            used += len(uri)
            cells.append(f"![{md_cell(shot)}]({uri})")
        cells += ["-"] * (THUMBS_PER_SHOT - len(cells))
        rows.append(f"| {md_cell(shot)} | {' | '.join(cells)} |")
    if rows:
        # One column per thumbnail: the UI shows an image per line within a cell.
        lines += ["## Shots", "", "| shot |" + " |" * THUMBS_PER_SHOT,
                  "| --- |" + " --- |" * THUMBS_PER_SHOT, *rows, ""]
    if left_out:
        lines.append(f"{left_out} thumbnails left out (the artifact keeps under "
                     f"{limit // 1000} kB); report.html has them all.")
    return "\n".join(lines)


def publish_pictures(key: str, title: str, sheet: Path | None,
                     thumbs: Mapping[str, Sequence[Path]], url: str | None = None) -> None:
    """The pictures artifact of the current run; a failure is a warning."""
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=pictures_markdown(title, sheet, thumbs, url), key=key,
                                 description=f"Contact sheet and shot thumbnails of {title}")
    except Exception as exc:  # noqa: BLE001 - pictures in the UI are a nicety, not the render
        log.warning("no Prefect pictures artifact (%s)", exc)
