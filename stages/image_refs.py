"""Where a storyboard's images may come from: local paths confined to known folders, and
(only when enabled) http/https URLs fetched with a size limit and a timeout.

Storyboards come from many hands, so an `image:` value is untrusted: `../../home/me/.ssh/id_rsa`,
an absolute path or a symlink pointing out of the storyboard's folder must not make a render read
(and hash, and show in a video) a file the storyboard's author had no business naming. A local
image must resolve (symlinks followed) inside the storyboard's folder or one of the configured
asset roots, unless the config explicitly allows any path. URLs are off by default.
"""

from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# A value with a scheme ("https://...", "file://...") is a URL, not a relative path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
REMOTE_SCHEMES = ("http", "https")
_CHUNK = 64 * 1024


class ImageRefError(ValueError):
    """An image reference the policy refuses or cannot resolve; str() is the user's message."""


@dataclass(frozen=True)
class ImagePolicy:
    """The config's `images:` settings (conf/config.yaml)."""

    asset_roots: tuple[Path, ...] = ()  # absolute folders images may also come from
    allow_any_path: bool = False  # true: no confinement of local paths
    remote: bool = False  # true: http(s) URLs are fetched
    remote_max_bytes: int = 50 * 1024 * 1024
    remote_timeout_s: float = 20.0


def is_url(ref: str) -> bool:
    return bool(_URL.match(ref))


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http/https (urllib would also follow one to ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in REMOTE_SCHEMES:
            raise ImageRefError(f"redirected to {newurl!r}; only http and https are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, max_bytes: int, timeout_s: float) -> bytes:
    """GET `url` into memory: at most `max_bytes`, and at most `timeout_s` in total (the socket
    timeout alone would let a server that trickles a byte at a time hold a render forever)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise ImageRefError(f"{url!r}: only http and https URLs can be fetched")
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": "reelforge"})
    try:
        with opener.open(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise ImageRefError(f"{url!r} is {int(length)} bytes, more than the limit of "
                                    f"{max_bytes} (images.remote_max_mb)")
            data = bytearray()
            while True:
                if time.monotonic() > deadline:
                    raise ImageRefError(f"{url!r} took longer than {timeout_s:g}s to download "
                                        "(images.remote_timeout_s)")
                # read1: whatever has arrived (at least a byte), so the deadline is checked
                # while a slow server trickles, not only after a full chunk.
                block = response.read1(_CHUNK)
                if not block:
                    break
                data += block
                if len(data) > max_bytes:
                    raise ImageRefError(f"{url!r} is more than the limit of {max_bytes} bytes "
                                        "(images.remote_max_mb)")
            return bytes(data)
    except ImageRefError:
        raise
    except urllib.error.HTTPError as exc:
        raise ImageRefError(f"{url!r}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise ImageRefError(f"{url!r} did not answer within {timeout_s:g}s "
                                "(images.remote_timeout_s)") from None
        raise ImageRefError(f"{url!r} could not be fetched: {reason}") from None


class ImageResolver:
    """Turns a storyboard's image references into local files, applying the policy.

    Fetched images live in a private temp folder for the life of the process (the planner hashes
    their bytes, the engine reads them); each URL is fetched once per resolver.
    """

    def __init__(self, base_dir: Path, policy: ImagePolicy = ImagePolicy()):
        self.base_dir = Path(base_dir).resolve()
        self.policy = policy
        self.roots = (self.base_dir,) + tuple(Path(r).resolve() for r in policy.asset_roots)
        self.resolved: dict[str, Path] = {}
        self._download_dir: Path | None = None

    def resolve(self, ref: str) -> Path:
        """The local file for `ref`; ImageRefError says why it may not or cannot be used."""
        if ref not in self.resolved:
            self.resolved[ref] = self._remote(ref) if is_url(ref) else self._local(ref)
        return self.resolved[ref]

    def _local(self, ref: str) -> Path:
        try:
            full = (self.base_dir / ref).resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before 3.13)
            raise ImageRefError(f"image {ref!r} cannot be resolved ({exc}); is it a symlink "
                                "that points to itself?") from None
        if not self.policy.allow_any_path and not _within(full, self.roots):
            folders = ", ".join(str(r) for r in self.roots)
            raise ImageRefError(
                f"image {ref!r} resolves to {full}, outside the storyboard's folder and the "
                f"asset roots ({folders}); move it there, add its folder to images.asset_roots, "
                "or allow any path with images.allow_any_path=true")
        return full

    def _remote(self, url: str) -> Path:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in REMOTE_SCHEMES:
            raise ImageRefError(f"image {url!r}: {scheme}:// is not supported; use a local path "
                                "or an http(s) URL")
        if not self.policy.remote:
            raise ImageRefError(f"image {url!r} is remote, and remote images are off; download "
                                "it next to the storyboard, or enable them with "
                                "images.remote=true")
        data = fetch(url, self.policy.remote_max_bytes, self.policy.remote_timeout_s)
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="reelforge-remote-"))
            atexit.register(shutil.rmtree, self._download_dir, True)
        suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
        suffix = suffix if suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp") else ".img"
        path = self._download_dir / (hashlib.sha256(url.encode()).hexdigest()[:24] + suffix)
        path.write_bytes(data)
        return path
