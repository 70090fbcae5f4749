"""What the user sees of a render: progress, the HTML report and the Prefect artifacts, the
manifest embedded in the video, and a clear answer when the disk is (or would be) full."""

from __future__ import annotations

import errno
import hashlib
import html
import json
from pathlib import Path

import pytest

from flows.pipeline import preflight
from flows.manifest import NoManifest, main as manifest_main, read_video_manifest
from flows.pipeline.prepare import prepare
from flows.pipeline.progress import RenderProgress, artifact_key
from flows.render import EXIT_FAILED, EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.media import video_io
from stages.store.cache import META, CacheStore
from stages.store.disk_estimate import estimate_bytes
from stages.outputs.manifest import embedded_manifest
from stages.outputs.report_html import render_report_markdown
from tests.helpers.synthetic import write_png

pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """
title: "Report <script>alert('x')</script>"
fps: 8
resolution: 96x64
shots:
  - {id: a, prompt: "first", image: pic.png, duration: 1s, camera: {zoom: 0.1}}
  - id: b
    segments:
      - {prompt: "second", duration: 1s}
      - {prompt: "third", frames: 9}
post: [interpolate2x]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rep.yaml").write_text(STORYBOARD)
    write_png(tmp_path / "pic.png", 96, 64)
    return tmp_path


def settings(project: Path, **kw) -> RenderSettings:
    base = dict(storyboard="rep.yaml", cwd=str(project), output_dir="out", retry_delay=0.0,
                engine={"name": "preview", "params": {"motion": 1.0}})
    base.update(kw)
    return RenderSettings(**base)


def test_report_manifest_in_the_video_and_artifacts(project: Path, capsys):
    assert run(settings(project)) == EXIT_OK
    out = capsys.readouterr().out
    # Progress lines (not a terminal): one after every segment and shot, ending at 100%.
    assert "progress: 3/3 segments, 2/2 shots, 100%" in out

    folder = project / "out" / "rep"
    manifest = json.loads((folder / "manifest.json").read_text())
    # Provenance: enough to trace and re-render the video.
    text = (project / "rep.yaml").read_bytes()
    assert manifest["storyboard_sha256"] == hashlib.sha256(text).hexdigest()
    assert manifest["storyboard_yaml"] == text.decode()
    assert manifest["config"]["engine"]["params"] == {"motion": 1.0}
    assert manifest["engine_identity"]["engine"] == "preview"
    assert {"python", "numpy", "prefect"} <= set(manifest["packages"])
    assert all(isinstance(seg["seed"], int) for shot in manifest["shots"]
               for seg in shot["segments"])

    # The same manifest, less this run's own measurements, travels inside the MP4.
    embedded = read_video_manifest(folder / "rep.mp4")
    assert embedded == embedded_manifest(manifest)
    assert embedded["storyboard_sha256"] == manifest["storyboard_sha256"]
    assert "timings" not in embedded and "cached" not in embedded["shots"][0]["segments"][0]
    copy = project / "again.yaml"
    assert manifest_main([str(folder / "rep.mp4"), "--storyboard", str(copy)]) == 0
    assert copy.read_bytes() == text
    assert json.loads(capsys.readouterr().out)["key"] == manifest["key"]
    with pytest.raises(NoManifest):
        read_video_manifest(folder / "shots" / "a.mp4")  # shot videos carry none

    # The HTML report: relative links, embedded thumbnails, timings, cache status, escaping.
    page = (folder / "report.html").read_text()
    assert 'src="rep.mp4"' in page and 'src="contact_sheet.png"' in page
    assert page.count("data:image/png;base64,") == 12  # 6 thumbnails for each of 2 shots
    assert str(project) not in page.split("<details>")[0]  # no absolute paths above provenance
    assert html.escape("<script>alert('x')</script>") in page and "<script>" not in page
    assert "3 rendered" in page and page.count('class="miss">rendered') == 5  # 3 segs + 2 posts
    assert "snapped to 9" in page  # the warnings

    # The Prefect artifacts: progress at 100 %, and the markdown report.
    from prefect.artifacts import Artifact

    progress = Artifact.get(artifact_key("rep"))
    assert progress is not None and progress.type == "progress" and progress.data == 100.0
    report = Artifact.get(artifact_key("rep") + "-report")
    assert report is not None and report.type == "markdown"
    assert "| a | 17 |" in report.data and "report.html" in report.data

    # Again: everything from the cache, and the report says so.
    assert run(settings(project)) == EXIT_OK
    page = (folder / "report.html").read_text()
    assert "0 rendered" in page and 'class="miss"' not in page


def test_markdown_escapes_storyboard_text():
    manifest = {"storyboard": "x", "shots": [{"id": "a|b", "frames": 1, "duration_s": 1.0,
                                              "segments": []}],
                "warnings": ["<img src=x onerror=alert(1)> *bold*"]}
    text = render_report_markdown(manifest)
    assert "a\\|b" in text and "&lt;img" in text and "\\*bold\\*" in text


def test_progress_counts_steps_and_estimates(project: Path):
    prepared = prepare(settings(project))
    lines: list[str] = []
    view = RenderProgress("lines", write=lines.append)
    view.begin(prepared)
    jobs = list(prepared.plan.segments())
    assert view.segments_total == 3 and view.gen_total == sum(j.frames for j in jobs)
    step = view.steps(jobs[0])
    for done in range(1, jobs[0].frames + 1):
        step(done, jobs[0].frames)
    view.segment_done(jobs[0], cached=False)
    assert 0 < view.fraction() < 1 and view.eta_seconds() is not None
    assert lines[-1].startswith("    progress: 1/3 segments, 0/2 shots")
    sent = []
    view.attach_artifact(sent.append)
    view.finish()
    assert view.fraction() == 1.0 and sent[-1] == 100.0


def test_a_render_that_would_not_fit_is_refused_before_anything_is_written(project, monkeypatch,
                                                                           capsys):
    monkeypatch.setattr(preflight, "free_bytes", lambda folder: 10_000_000)  # 10 MB free
    assert run(settings(project)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "not enough disk space; nothing was written" in err and "disk_check=false" in err
    assert "Traceback" not in err
    assert not (project / "out").exists()
    # A dry run makes the same check: the plan prints, then the same refusal.
    assert run(settings(project, dry_run=True)) == EXIT_FAILED
    assert "not enough disk space" in capsys.readouterr().err
    # What the check compares: the plan's estimate against the free space, per file system.
    needs = preflight.disk_needs(prepare(settings(project)), free=lambda folder: 10_000_000)
    assert len(needs) == 1 and 0 < needs[0].needed < preflight.RESERVE_BYTES
    assert preflight.check_disk_space(prepare(settings(project, disk_check=False)),
                                   free=lambda folder: 0) is None


def test_estimate_counts_only_what_is_not_cached(project: Path):
    prepared = prepare(settings(project))
    cold = estimate_bytes(prepared.plan, prepared.store)
    assert cold.cache > cold.render_folder > 0
    frame = 96 * 64 * 3
    frames = sum(j.frames for j in prepared.plan.segments())
    assert cold.cache >= frames * frame * 0.75  # at least the lossless segment clips


def test_a_full_disk_mid_render_fails_clearly_and_leaves_the_cache_consistent(project, monkeypatch,
                                                                             capsys):
    attempts = []
    real_write = video_io.VideoWriter.write

    def write(self, frame):
        if "/shot/" in str(self.path) and self.frames_written == 5:
            attempts.append(self.path)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, frame)

    monkeypatch.setattr(video_io.VideoWriter, "write", write)
    assert run(settings(project, workers=1, retries=2)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "No space left on device" in err and "The disk is full" in err, err
    assert "run the same command again" in err
    assert len(attempts) == 2, "each shot's post chain tried once: a full disk is not retried"
    cache = project / "out" / ".cache"
    assert not [p for p in cache.rglob(".*") if ".tmp-" in p.name], "temp files were left"
    store = CacheStore(cache)
    segments = list((cache / "segment").glob(f"*/*/{META}"))
    assert segments and all(store.get("segment", m.parent.name) for m in segments)
    assert not (cache / "shot").exists() or not list((cache / "shot").glob(f"*/*/{META}"))

    monkeypatch.setattr(video_io.VideoWriter, "write", real_write)
    assert run(settings(project)) == EXIT_OK
    manifest = json.loads((project / "out" / "rep" / "manifest.json").read_text())
    assert manifest["segments_cached"] == len(segments)
