"""Issue 12 end to end on the preview engine: damaged cache entries and dead writers' temps do not
block a rerun, a full disk and a read-only cache fail with their message (never a traceback), a
`shots=[...]` render destroys nothing of the full one, and the manifest inside the MP4 holds no
trace of the machine (and re-renders)."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections import namedtuple
from pathlib import Path, PurePosixPath

import pytest

import stages.store.cache as cache_mod
from flows.manifest import main as manifest_main, read_video_manifest
from flows.render import EXIT_FAILED, EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.media import video_io
from stages.store.cache import META
from stages.store.temp_names import writer_tag
from stages.outputs.manifest import embedded_manifest, strip_yaml_comments
from tests.helpers.synthetic import write_png

pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """# Episode 3, draft by alice@her-laptop, see notes.txt in her home folder
fps: 8
resolution: 96x64
shots:
  - id: a        # the opening
    prompt: "first # not a comment"
    image: pic.png
    duration: 1s
  - id: b
    prompt: 'second'   # keeper climbs
    frames: 9
  - id: c
    start: chain
    prompt: "third"
    frames: 9
"""
Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "ep.yaml").write_text(STORYBOARD)
    write_png(tmp_path / "pic.png", 96, 64)
    return tmp_path


def settings(project: Path, **kw) -> RenderSettings:
    base = dict(storyboard="ep.yaml", cwd=str(project), output_dir="out", retry_delay=0.0,
                retries=1, workers=1, engine={"name": "preview"})
    base.update(kw)
    return RenderSettings(**base)


def test_subset_render_keeps_the_full_episode_and_portable_manifest(project, capsys):
    assert run(settings(project)) == EXIT_OK
    folder = project / "out" / "ep"
    full = (folder / "ep.mp4").read_bytes()
    others = {p: p.read_bytes() for p in [folder / "shots" / "a.mp4", folder / "shots" / "c.mp4",
                                          folder / "frames" / "a_0_last.png"]}

    # The manifest inside the video: no absolute path, no user or host name, no comments.
    tag = json.dumps(read_video_manifest(folder / "ep.mp4"))
    host = socket.gethostname()
    for leak in (str(project), "/tmp/", "/home/", "alice", "her-laptop",
                 *([host] if len(host) >= 5 else [])):  # a 2-letter name is in many words
        assert leak not in tag, leak
    embedded = read_video_manifest(folder / "ep.mp4")
    assert embedded["storyboard_comments"] == "removed"
    assert "first # not a comment" in embedded["storyboard_yaml"]
    assert "#" not in embedded["storyboard_yaml"].replace("first # not", "")
    assert embedded["config"]["cwd"] == "." and embedded["config"]["output_dir"] == "out"
    # manifest.json (this machine's own record) keeps the storyboard as it was.
    local = json.loads((folder / "manifest.json").read_text())
    assert local["storyboard_yaml"] == STORYBOARD

    # Re-render from the extracted manifest: the same data, so every segment comes from the cache.
    again = project / "again.yaml"
    assert manifest_main([str(folder / "ep.mp4"), "--storyboard", str(again)]) == 0
    capsys.readouterr()
    assert run(settings(project, storyboard="again.yaml")) == EXIT_OK
    rerun = json.loads((project / "out" / "again" / "manifest.json").read_text())
    assert rerun["segments_rendered"] == 0 and rerun["key"] == local["key"]

    # shots=[b] into the same folder: its own file names, nothing of the full render lost.
    report = (folder / "report.html").read_bytes()
    assert run(settings(project, shots=["b"])) == EXIT_OK
    assert (folder / "ep.mp4").read_bytes() == full
    assert all(p.read_bytes() == data for p, data in others.items())
    subset = folder / "ep.shots-b.mp4"
    assert subset.is_file() and (folder / "contact_sheet.shots-b.png").is_file()
    assert (folder / "contact_sheet.png").is_file()
    assert json.loads((folder / "manifest.json").read_text())["video"] == "ep.mp4"
    assert (folder / "report.html").read_bytes() == report
    subset_manifest = json.loads((folder / "manifest.shots-b.json").read_text())
    assert subset_manifest["video"] == "ep.shots-b.mp4"
    assert subset_manifest["report"] == "report.shots-b.html"
    assert "ep.shots-b.mp4" in (folder / "report.shots-b.html").read_text()
    # All shots listed: that is the full episode again.
    assert run(settings(project, shots=["a", "b", "c"])) == EXIT_OK
    assert read_video_manifest(folder / "ep.mp4")["key"] == local["key"]
    assert not list(folder.glob("ep.shots-a+b+c*"))


def test_damaged_entries_and_dead_temps_do_not_block_a_rerun(project, capsys):
    assert run(settings(project)) == EXIT_OK
    cache = project / "out" / ".cache"
    for kind in ("segment", "shot"):
        meta = next((cache / kind).glob(f"*/*/{META}"))
        meta.unlink()  # the entry's folder stays, without its metadata
    shard = next((cache / "segment").iterdir())
    dead = shard / f".{'e' * 64}.tmp-999999-{writer_tag()}deadbeef"
    dead.mkdir()
    (dead / "clip.mkv").write_bytes(b"half a clip")
    capsys.readouterr()

    assert run(settings(project, retries=0)) == EXIT_OK, capsys.readouterr().err
    assert not dead.exists(), "a dead writer's temp folder survived the next run"
    for kind in ("segment", "shot"):
        for entry in (cache / kind).glob("*/*"):
            if not entry.name.startswith("."):
                assert (entry / META).is_file(), f"{kind} entry {entry.name[:12]} not rebuilt"
    manifest = json.loads((project / "out" / "ep" / "manifest.json").read_text())
    assert manifest["segments_rendered"] == 1


def test_a_full_disk_mid_encode_says_disk_full_with_figures(project, monkeypatch, capsys):
    real_write = video_io.VideoWriter.write

    def write(self, frame):
        if "/segment/" in str(self.path) and self.frames_written == 3:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")  # what ffmpeg's death looks like
        return real_write(self, frame)

    monkeypatch.setattr(video_io.VideoWriter, "write", write)
    monkeypatch.setattr(cache_mod, "_disk_usage", lambda path: Usage(2 * 10**12, 2 * 10**12, 0))
    assert run(settings(project)) == EXIT_FAILED
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error: render of ep failed"))
    assert "disk full" in line and "0 B free of 2.0 TB" in line and "Broken pipe" not in line, err
    assert "The disk is full" in err  # flows.render's advice follows


def test_a_read_only_cache_says_so(project, monkeypatch, capsys):
    cache = project / "ro-cache"
    cache.mkdir()
    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path, *args, **kw):
        if str(path).startswith(str(cache) + os.sep):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kw)

    def open_(path, flags, *args, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(cache)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    assert run(settings(project, cache_dir=str(cache))) == EXIT_FAILED
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error: render of ep failed"))
    assert "not writable (read-only file system)" in line and "cache_dir=" in line, err


def test_embedded_manifest_replaces_machine_paths():
    # Paths of another (imagined) machine, as data only: nothing here is read or written.
    root = PurePosixPath("/")
    show, data = root / "home" / "alice" / "show", root / "data" / "renders"
    manifest = {
        "storyboard": "ep", "storyboard_path": str(show / "storyboards" / "ep.yaml"),
        "render_folder": str(data / "ep"), "storyboard_yaml": "fps: 8  # alice\n",
        "config": {"cwd": str(show), "storyboard": "ep", "output_dir": str(data),
                   "cache_dir": str(root / "mnt" / "cache"),
                   "engine": {"model": str(show.parent / "models" / "wan21")},
                   "storyboards_dir": str(show / "storyboards")},
        "engine_identity": {"model": str(root / "opt" / "weights" / "Wan2.1")},
        "warnings": [f"image {show / 'storyboards' / 'assets' / 'x.png'} is small"],
        "video": "ep.mp4", "shots": [],
    }
    out = embedded_manifest(manifest)
    text = json.dumps(out)
    assert "alice" not in text
    assert "/home" not in text and "/data" not in text and "/mnt" not in text
    assert out["config"]["cwd"] == ".." and out["config"]["storyboards_dir"] == "."
    assert out["config"]["output_dir"] == "<output_dir>"
    assert out["config"]["cache_dir"] == "<cache_dir>"
    assert out["config"]["engine"]["model"] == "~/models/wan21"
    assert out["engine_identity"]["model"] == ".../Wan2.1"
    assert out["warnings"] == ["image assets/x.png is small"]
    assert out["storyboard_yaml"] == "fps: 8\n" and "storyboard_path" not in out
    kept = embedded_manifest({**manifest, "config": {**manifest["config"],
                                                     "provenance": {"comments": True}}})
    assert kept["storyboard_yaml"] == "fps: 8  # alice\n"


def test_strip_yaml_comments_keeps_the_data():
    text = ("# head\nshots:\n  - id: a  # c\n    prompt: 'it''s # in' # c2\n    negative: |\n"
            "      keep # this\n    # dropped\n  - {id: b, prompt: \"${x} # y\"}  # z\n")
    out = strip_yaml_comments(text)
    import yaml

    assert yaml.safe_load(out) == yaml.safe_load(text)
    assert "head" not in out and "c2" not in out and "dropped" not in out and "# z" not in out
    assert "keep # this" in out and "${x} # y" in out
    assert strip_yaml_comments("fps: 8\n") == "fps: 8\n"


def test_a_full_render_folder_says_disk_full_and_names_output_dir(project, monkeypatch, capsys):
    import stages.render.assemble as assemble

    real_copy = assemble.shutil.copyfile
    out = project / "out" / "ep"

    def copyfile(src, dst, *args, **kw):
        if str(dst).startswith(str(out)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, *args, **kw)

    monkeypatch.setattr(assemble.shutil, "copyfile", copyfile)
    monkeypatch.setattr(cache_mod, "_disk_usage", lambda path: Usage(10**11, 10**11, 4096))
    assert run(settings(project)) == EXIT_FAILED
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error: render of ep failed"))
    assert "disk full" in line and "the render folder" in line and "4.1 kB free of 100.0 GB" \
        in line and "output_dir=" in line, err


def test_a_published_manifest_is_the_portable_one(tmp_path):
    from flows.deploy.publish import EpisodeFiles, _copy_to

    folder = tmp_path / "renders" / "ep"
    folder.mkdir(parents=True)
    (folder / "ep.mp4").write_bytes(b"video")
    (folder / "contact_sheet.png").write_bytes(b"png")
    manifest = {"storyboard": "ep", "video": "ep.mp4", "contact_sheet": "contact_sheet.png",
                "storyboard_path": str(tmp_path / "sb" / "ep.yaml"), "render_folder": str(folder),
                "storyboard_yaml": "# by alice\nfps: 8\n", "shots": [],
                "config": {"cwd": str(tmp_path), "output_dir": "renders"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _copy_to(str(tmp_path / "pub"), EpisodeFiles.of(folder, "ep", manifest))
    published = (tmp_path / "pub" / "ep_manifest.json").read_text()
    assert str(tmp_path) not in published and "alice" not in published
    assert json.loads(published)["config"] == {"cwd": "..", "output_dir": "renders"}


def test_provenance_comments_setting_keeps_them(project):
    assert run(settings(project, provenance={"comments": True})) == EXIT_OK
    embedded = read_video_manifest(project / "out" / "ep" / "ep.mp4")
    assert embedded["storyboard_comments"] == "kept"
    assert "# keeper climbs" in embedded["storyboard_yaml"]
