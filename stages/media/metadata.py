"""Container (global) metadata tags: the rules for keys and values, reading them back, and
re-copying a finished video with new tags without re-encoding (how the manifest travels inside
the episode's MP4)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from stages.media import ffmpeg
from stages.media.atomic import atomic_path
from stages.store.temp_names import scratch_beside

__all__ = ["metadata_params", "read_metadata", "copy_with_metadata"]


def metadata_params(metadata: Mapping[str, str] | None) -> list[str]:
    """ffmpeg `-metadata key=value` arguments for `metadata`; raises ValueError on a key or value
    that ffmpeg would mangle (empty key, '=', NUL or newline in a key, NUL in a value)."""
    params: list[str] = []
    for key, value in (metadata or {}).items():
        key = str(key)
        value = str(value)
        if not key or "=" in key or "\0" in key or "\n" in key:
            raise ValueError(f"invalid metadata key {key!r} (non-empty, no '=', no NUL/newline)")
        if "\0" in value:
            raise ValueError(f"metadata value for {key!r} contains a NUL byte")
        params += ["-metadata", f"{key}={value}"]
    return params


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """Parse the global section of an FFMETADATA1 document (backslash escapes ``=;#\\`` and
    newline; stops at the first ``[STREAM]``/``[CHAPTER]`` section)."""
    result: dict[str, str] = {}
    lines_start = True
    i, n = 0, len(text)
    if text.startswith(";FFMETADATA"):
        i = text.find("\n") + 1 if "\n" in text else n
    key: list[str] = []
    value: list[str] = []
    in_value = False
    while i < n:
        ch = text[i]
        if lines_start:
            if ch in ";#":  # comment line
                j = text.find("\n", i)
                i = n if j < 0 else j + 1
                continue
            if ch == "[":  # a section: the global part is over
                break
            if ch == "\n":
                i += 1
                continue
            lines_start = False
        if ch == "\\" and i + 1 < n:
            (value if in_value else key).append(text[i + 1])
            i += 2
            continue
        if ch == "\n":
            if in_value:
                result["".join(key)] = "".join(value)
            key, value, in_value, lines_start = [], [], False, True
            i += 1
            continue
        if ch == "=" and not in_value:
            in_value = True
        else:
            (value if in_value else key).append(ch)
        i += 1
    if in_value:
        result["".join(key)] = "".join(value)
    return result


def read_metadata(path: Path | str) -> dict[str, str]:
    """Container (global) metadata tags of ``path``. Keys are lower-cased (Matroska upper-cases
    tag names on write, MP4 keeps them; ffmpeg treats keys case-insensitively). Includes
    ffmpeg's own tags such as ``encoder`` (and ``major_brand``... for MP4)."""
    path = Path(path)
    proc = ffmpeg.run_ffmpeg(
        ["-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
         "-vn", "-an", "-sn", "-dn", "-f", "ffmetadata", "-"],
        path,
    )
    raw = _parse_ffmetadata(proc.stdout.decode("utf-8", "replace"))
    return {k.lower(): v for k, v in raw.items()}


def _ffmetadata_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "=;#\\\n" else ch for ch in text)


def copy_with_metadata(src: Path | str, dst: Path | str, metadata: Mapping[str, str]) -> Path:
    """Copy the video `src` to `dst` (atomically) with `metadata` as its container tags, without
    re-encoding: the streams are copied bit for bit, so the decoded frames are unchanged.

    The tags travel in an FFMETADATA file rather than `-metadata key=value` arguments, so a value
    may be larger than the operating system's limit on one argument (128 KiB on Linux). MP4 gets
    `use_metadata_tags` so that keys other than the few iTunes ones survive.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}")
    lines = [";FFMETADATA1"]
    for key, value in metadata.items():
        metadata_params({key: value})  # same key rules as the writer
        lines.append(f"{_ffmetadata_escape(str(key))}={_ffmetadata_escape(str(value))}")
    with atomic_path(dst) as tmp:
        meta_file = scratch_beside(tmp, ".ffmeta")
        meta_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            args = ["-hide_banner", "-nostdin", "-v", "error", "-i", str(src),
                    "-f", "ffmetadata", "-i", str(meta_file),
                    "-map", "0", "-map_metadata", "1", "-c", "copy"]
            if dst.suffix.lower() in ffmpeg.MP4_LIKE:
                args += ["-movflags", "+faststart+use_metadata_tags"]
            ffmpeg.run_ffmpeg(args + [str(tmp)], src)
        finally:
            meta_file.unlink(missing_ok=True)
    return dst
