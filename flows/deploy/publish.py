"""The publish step after each episode of a series: "render, then upload".

`series.publish` (conf/series/<name>.yaml):

    publish:
      dir: /srv/videos              # copy <episode>.mp4, <episode>_contact_sheet.png and
                                    # <episode>_manifest.json here (a folder or an fsspec URL);
                                    # the manifest copied is the portable one (as in the video:
                                    # relative paths, no user or host names, no comments)
      command: [rclone, copyto, "{video}", "remote:shows/{episode}.mp4"]
      timeout_s: 3600
      force: false                  # publish again even when this episode was published before

The command is an argument list run without a shell (nothing in a prompt or a file name can inject
shell syntax); `{video}`, `{episode}`, `{contact_sheet}`, `{manifest}` and `{folder}` in any
argument are replaced by that episode's values. A non-zero exit fails the episode with the
command's output. Publishing is idempotent: once an episode's content (its manifest key) was
published to a target, a rerun of the same night skips it; an edited episode publishes again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.config.settings import ConfigInvalid
from stages.media.atomic import atomic_path, atomic_write_bytes
from stages.store.cache import CacheStore
from stages.plan.keys import content_key
from stages.outputs.manifest import embedded_manifest

PLACEHOLDERS = ("video", "episode", "contact_sheet", "manifest", "folder")


class PublishFailed(RuntimeError):
    """The publish command failed or the publish folder could not be written."""


@dataclass(frozen=True)
class PublishConfig:
    dir: str | None = None
    command: tuple[str, ...] | None = None
    timeout_s: float = 3600.0
    force: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.dir or self.command)

    @classmethod
    def of(cls, data: Any, where: str = "series.publish") -> "PublishConfig":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigInvalid(f"{where}={data!r}: give a mapping with dir: and/or command:")
        unknown = sorted(set(data) - {"dir", "command", "timeout_s", "force"})
        if unknown:
            raise ConfigInvalid(f"{where}.{unknown[0]}: unknown key; known: dir, command, "
                                "timeout_s, force")
        folder, command = data.get("dir"), data.get("command")
        if folder is not None and not isinstance(folder, str):
            raise ConfigInvalid(f"{where}.dir={folder!r}: give a folder or an fsspec URL")
        if command is not None and (
            isinstance(command, str) or not isinstance(command, (list, tuple)) or not command
            or not all(isinstance(a, (str, int, float)) for a in command)
        ):
            raise ConfigInvalid(f"{where}.command={command!r}: give an argument list (no shell), "
                                'e.g. [rclone, copyto, "{video}", "remote:shows/{episode}.mp4"]')
        timeout = data.get("timeout_s", 3600.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigInvalid(f"{where}.timeout_s={timeout!r}: must be seconds > 0")
        return cls(folder or None, tuple(str(a) for a in command) if command else None,
                   float(timeout), bool(data.get("force", False)))


@dataclass(frozen=True)
class EpisodeFiles:
    episode: str
    folder: Path
    video: Path
    contact_sheet: Path
    manifest: Path

    @classmethod
    def of(cls, folder: Path, episode: str, manifest: dict[str, Any]) -> "EpisodeFiles":
        return cls(episode, folder, folder / manifest["video"], folder / manifest["contact_sheet"],
                   folder / "manifest.json")


def expand(argument: str, files: EpisodeFiles) -> str:
    values = {"video": files.video, "episode": files.episode, "contact_sheet": files.contact_sheet,
              "manifest": files.manifest, "folder": files.folder}
    for name in PLACEHOLDERS:
        argument = argument.replace("{" + name + "}", str(values[name]))
    return argument


def portable_manifest(manifest_file: Path) -> bytes:
    """manifest.json as it may leave this machine: the copy the video carries
    (stages.outputs.manifest.embedded_manifest), pretty-printed."""
    manifest = json.loads(Path(manifest_file).read_text(encoding="utf-8"))
    return (json.dumps(embedded_manifest(manifest), sort_keys=True, indent=2, ensure_ascii=False)
            + "\n").encode("utf-8")


def _copy_to(target_dir: str, files: EpisodeFiles) -> None:
    pairs = [(files.video, f"{files.episode}{files.video.suffix}"),
             (files.contact_sheet, f"{files.episode}_contact_sheet.png")]
    manifest_name = f"{files.episode}_manifest.json"
    manifest = portable_manifest(files.manifest)
    from flows.config.storage import filesystem, is_remote

    if is_remote(target_dir):
        fs = filesystem(target_dir)
        for src, name in pairs:
            fs.put_file(str(src), f"{target_dir.rstrip('/')}/{name}")
        fs.pipe_file(f"{target_dir.rstrip('/')}/{manifest_name}", manifest)
        return
    folder = Path(target_dir.removeprefix("file://")).expanduser()
    for src, name in pairs:
        with atomic_path(folder / name) as tmp:  # a half-copied video never shows up
            shutil.copyfile(src, tmp)
    atomic_write_bytes(folder / manifest_name, manifest)


def _run(command: tuple[str, ...], files: EpisodeFiles, timeout_s: float) -> str:
    args = [expand(a, files) for a in command]
    try:
        done = subprocess.run(args, shell=False, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise PublishFailed(f"publish command {args[0]!r} not found (series.publish.command)"
                            ) from None
    except subprocess.TimeoutExpired:
        raise PublishFailed(f"publish command {args} ran longer than {timeout_s:g}s "
                            "(series.publish.timeout_s)") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise PublishFailed(f"publish command {args} exited with {done.returncode}: "
                            f"{output[-2000:]}")
    return output


def publish_episode(config: PublishConfig, files: EpisodeFiles, episode_key: str,
                    store: CacheStore) -> str:
    """Publish one rendered episode; returns "published", "already published" or "off"."""
    if not config.enabled:
        return "off"
    marker = content_key("published", {"episode": episode_key, "dir": config.dir,
                                       "command": list(config.command or ())})
    if not config.force and store.has("published", marker):
        return "already published"
    if config.dir:
        try:
            _copy_to(config.dir, files)
        except (OSError, ValueError) as exc:
            raise PublishFailed(f"cannot copy {files.episode} to {config.dir} "
                                f"(series.publish.dir): {exc}") from None
    output = _run(config.command, files, config.timeout_s) if config.command else ""
    with store.put("published", marker, {"episode": files.episode}) as tmp:
        (tmp / "output.txt").write_text(output[-10000:] + "\n", encoding="utf-8")
    return "published"
