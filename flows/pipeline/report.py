"""The end of every render: provenance, manifest.json, the manifest inside the MP4, report.html,
the Prefect markdown artifact, and the record of which cache entries this storyboard uses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from flows.pipeline.prepare import Prepared
from flows.pipeline.run_meta import publish_pictures, run_url
from stages.media.atomic import atomic_write_text
from stages.store.cache_refs import record_refs
from stages.outputs.manifest import VIDEO_TAG, manifest_tag, provenance, write_manifest
from stages.store.output_paths import remove_dead_temps
from stages.render.steps import ShotResult
from stages.outputs.report_html import render_report_html, render_report_markdown
from stages.media.video_io import copy_with_metadata

log = logging.getLogger(__name__)

def storyboard_text(prepared: Prepared) -> bytes:
    """The storyboard file as it is now; read when the render starts, so provenance names what
    was rendered even if the file is saved again meanwhile (watch mode)."""
    return Path(prepared.storyboard.path).read_bytes()


def publish_render(prepared: Prepared, manifest: dict[str, Any], shots: Sequence[ShotResult],
                   source: bytes | None = None) -> dict[str, Any]:
    """Complete `manifest` with provenance and write every per-render file; returns it."""
    out_dir = prepared.out_dir
    text = source if source is not None else storyboard_text(prepared)
    manifest = {**manifest, **provenance(text, prepared.settings.to_dict())}
    manifest["title"] = prepared.storyboard.model.title
    files = prepared.files
    manifest["report"] = files.report
    url = run_url()
    if url:  # the flow run's page in the Prefect UI; report.html links to it
        manifest["run_url"] = url
    write_manifest(out_dir / files.manifest, manifest)

    # The episode in the render folder is a copy of the cached one; re-copy it with the manifest
    # in its metadata (streams copied, not re-encoded: the frames stay identical). The run's URL
    # names this machine's Prefect server: manifest_tag leaves it out (manifest.RUN_ONLY).
    video = out_dir / manifest["video"]
    copy_with_metadata(video, video, {"title": prepared.plan.name, VIDEO_TAG: manifest_tag(manifest)})

    remove_dead_temps(out_dir)  # what a killed render left behind in this folder
    # A shot's generated keyframes lead its thumbnails in the report.
    thumbs = {shot.id: [k.image for k in shot.keyframes] + list(shot.thumbs) for shot in shots}
    atomic_write_text(out_dir / files.report, render_report_html(manifest, thumbs))
    record_refs(prepared.store.root, prepared.plan, prepared.settings.to_dict(),
                prepared.settings.variant)
    _markdown_artifact(prepared, manifest)
    _pictures_artifact(prepared, manifest, thumbs)
    return manifest


def _pictures_artifact(prepared: Prepared, manifest: dict[str, Any],
                       thumbs: dict[str, list[Path]]) -> None:
    """The contact sheet and each shot's thumbnails, shown on the run's Artifacts tab."""
    from flows.pipeline.progress import artifact_key

    sheet = prepared.out_dir / manifest["contact_sheet"] if manifest.get("contact_sheet") else None
    publish_pictures(artifact_key(prepared.plan.name) + "-pictures",
                     manifest.get("title") or prepared.plan.name, sheet, thumbs,
                     manifest.get("run_url"))


def _markdown_artifact(prepared: Prepared, manifest: dict[str, Any]) -> None:
    from flows.pipeline.progress import artifact_key

    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            markdown=render_report_markdown(manifest, str(prepared.out_dir / manifest["report"])),
            key=artifact_key(prepared.plan.name) + "-report",
            description=f"Render report of {prepared.plan.name}")
    except Exception as exc:  # noqa: BLE001 - a report in the UI is a nicety, not the render
        log.warning("no Prefect report artifact (%s)", exc)
