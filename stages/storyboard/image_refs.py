"""Where the files a storyboard names may come from: local paths confined to known folders, and
(only for images, only when enabled) http/https URLs fetched with a size limit and a timeout.

Storyboards come from many hands, so every path in one is untrusted: an image, a LoRA, a source or
driving video, a chain anchor, the soundtrack, a post stage's LUT, colour reference or model.
`../../home/me/.ssh/id_rsa`, `~/.profile`, an absolute path or a symlink pointing out of the
storyboard's folder must not make a render read (and hash, and show in a video, or quote in an
error) a file the storyboard's author had no business naming. One resolver (`ImageResolver`, also
exported as `FileResolver`) applies the same rule to all of them: a local file must resolve
(symlinks followed) inside the storyboard's folder or one of the configured asset roots, unless
the config explicitly allows any path. Messages name the reference and where it resolves, never
the file's contents.

URLs are off by default. When enabled, only http and https are fetched, and every connection
(the first and each one after a redirect) is checked where it is made: a host that resolves to a
loopback, private, link-local, multicast or otherwise non-global address is refused unless the
config's `images.remote_allow` lists that host name or a network holding the address. Proxy
environment variables are not used, so the check is on the address actually connected to.
"""

from __future__ import annotations

import atexit
import hashlib
import http.client
import ipaddress
import os
import re
import socket
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
    # Host names and addresses / networks (CIDR) a fetch may reach although they are not global
    # (loopback, private, link-local): e.g. ("assets.lan", "10.0.5.0/24").
    remote_allow: tuple[str, ...] = ()


def is_url(ref: str) -> bool:
    return bool(_URL.match(ref))


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


class RemoteAllowList:
    """`images.remote_allow`: host names (exact, any case) and IP addresses or networks."""

    def __init__(self, entries: Sequence[str] = ()):
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = str(entry).strip()
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def permits(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(address.version == net.version and address in net for net in self.networks)


def check_address_text(entry: str) -> str | None:
    """Why `entry` cannot be an allow-list item (None when it can): a host name, an address or
    a network in CIDR notation."""
    try:
        ipaddress.ip_network(entry, strict=False)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?", entry) and \
            ".." not in entry:
        return None
    return "not a host name, an IP address or a network like 10.0.0.0/8"


def _plain(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared, reserved,
    unspecified or multicast)."""
    return ip.is_global and not ip.is_multicast


class BlockedAddress(ImageRefError):
    """A fetch would connect to an address the policy refuses."""


def _checked_connector(allow: RemoteAllowList):
    """A drop-in for socket.create_connection that resolves the host itself and connects only to
    addresses the policy permits (so a DNS answer cannot change between check and connect)."""

    def create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT,  # noqa: SLF001
                          source_address=None, **kwargs):
        host, port = address[0], address[1]
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from None
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            ip = _plain(sockaddr[0])
            if not is_public(ip) and not allow.permits(host, ip):
                raise BlockedAddress(
                    f"host {host!r} resolves to {ip}, a loopback, private, link-local or "
                    f"otherwise non-public address; remote images may only come from public "
                    f"addresses unless images.remote_allow lists the host or its network")
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # noqa: SLF001
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise error or OSError(f"cannot resolve host {host!r}")

    return create_connection


def _connection_classes(allow: RemoteAllowList):
    connector = _checked_connector(allow)

    class CheckedHTTPConnection(http.client.HTTPConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = connector

    class CheckedHTTPSConnection(http.client.HTTPSConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = connector

    return CheckedHTTPConnection, CheckedHTTPSConnection


def _checked_handlers(allow: RemoteAllowList) -> list:
    plain, secure = _connection_classes(allow)

    class HttpHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(plain, req)

    class HttpsHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(secure, req, context=self._context)

    # No proxies from the environment: the address checked must be the one connected to.
    return [urllib.request.ProxyHandler({}), HttpHandler(), HttpsHandler()]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http/https (urllib would also follow one to ftp://); the address
    of every hop is checked when its connection is made."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in REMOTE_SCHEMES:
            raise ImageRefError(f"redirected to {newurl!r}; only http and https are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, max_bytes: int, timeout_s: float, allow: Sequence[str] = ()) -> bytes:
    """GET `url` into memory: at most `max_bytes`, and at most `timeout_s` in total (the socket
    timeout alone would let a server that trickles a byte at a time hold a render forever).
    Only public addresses are connected to, on every hop, unless `allow` (host names, addresses,
    CIDR networks) says otherwise."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise ImageRefError(f"{url!r}: only http and https URLs can be fetched")
    opener = urllib.request.build_opener(*_checked_handlers(RemoteAllowList(allow)),
                                         _HttpOnlyRedirects())
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
    except BlockedAddress as exc:
        raise ImageRefError(f"{url!r} was refused: {exc}") from None
    except ImageRefError:
        raise
    except urllib.error.HTTPError as exc:
        raise ImageRefError(f"{url!r}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, BlockedAddress):
            raise ImageRefError(f"{url!r} was refused: {reason}") from None
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise ImageRefError(f"{url!r} did not answer within {timeout_s:g}s "
                                "(images.remote_timeout_s)") from None
        raise ImageRefError(f"{url!r} could not be fetched: {reason}") from None


class ImageResolver:
    """Turns a storyboard's file references (images, and every other file it names) into local
    files, applying the policy.

    Fetched images live in a private temp folder for the life of the process (the planner hashes
    their bytes, the engine reads them); each URL is fetched once per resolver.
    """

    def __init__(self, base_dir: Path, policy: ImagePolicy = ImagePolicy()):
        self.base_dir = Path(base_dir).resolve()
        self.policy = policy
        self.roots = (self.base_dir,) + tuple(Path(r).resolve() for r in policy.asset_roots)
        self.resolved: dict[str, Path] = {}
        self._download_dir: Path | None = None

    def resolve(self, ref: str, what: str = "image", remote: bool = True) -> Path:
        """The local file for `ref`; ImageRefError says why it may not or cannot be used.
        `what` names the kind of file in messages; `remote=False`: URLs are refused (only images
        may be fetched). Nothing is opened: only the path is resolved (symlinks followed)."""
        if is_url(ref) and not remote:
            raise ImageRefError(f"{what} {ref!r} is a URL; only images may be remote, give a "
                                "file next to the storyboard")
        if ref not in self.resolved:
            self.resolved[ref] = self._remote(ref) if is_url(ref) else self._local(ref, what)
        return self.resolved[ref]

    def _local(self, ref: str, what: str = "image") -> Path:
        if "\0" in ref:
            raise ImageRefError(f"{what} {ref!r} contains a NUL byte; no file name can")
        if ref.startswith("~"):
            if not self.policy.allow_any_path:
                raise ImageRefError(
                    f"{what} {ref!r} names a home folder (~), outside the storyboard's folder "
                    "and the asset roots; give a path relative to the storyboard, add the folder "
                    "to images.asset_roots, or allow any path with images.allow_any_path=true")
            ref = str(Path(ref).expanduser())
        try:
            full = (self.base_dir / ref).resolve()
        except (RuntimeError, OSError, ValueError) as exc:  # a symlink loop (RuntimeError < 3.13)
            raise ImageRefError(f"{what} {ref!r} cannot be resolved ({type(exc).__name__}); is "
                                "it a symlink that points to itself?") from None
        if not self.policy.allow_any_path and not _within(full, self.roots):
            folders = ", ".join(str(r) for r in self.roots)
            raise ImageRefError(
                f"{what} {ref!r} resolves to {full}, outside the storyboard's folder and the "
                f"asset roots ({folders}); move it there, add its folder to images.asset_roots, "
                "or allow any path with images.allow_any_path=true")
        return full

    def file(self, ref: str, what: str, suffixes: Sequence[str] = ()) -> Path:
        """`resolve` for a file that must exist as a regular file (a LUT, a model, a video):
        ImageRefError when it is refused, missing, not a file or has another suffix."""
        full = self.resolve(ref, what, remote=False)
        if not full.exists():
            raise ImageRefError(f"{what} {ref!r} not found (looked at {full}); paths are "
                                "relative to the storyboard file")
        if not full.is_file():
            raise ImageRefError(f"{what} {ref!r} is not a file (looked at {full})")
        if suffixes and not full.name.lower().endswith(tuple(suffixes)):
            raise ImageRefError(f"{what} {ref!r} is not a {' or '.join(suffixes)} file")
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
        data = fetch(url, self.policy.remote_max_bytes, self.policy.remote_timeout_s,
                     self.policy.remote_allow)
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="reelforge-remote-"))
            atexit.register(shutil.rmtree, self._download_dir, True)
        suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
        suffix = suffix if suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp") else ".img"
        path = self._download_dir / (hashlib.sha256(url.encode()).hexdigest()[:24] + suffix)
        path.write_bytes(data)
        return path.resolve()  # as local files are: unchanged() compares resolved paths


def unchanged(path: Path | str, what: str) -> Path:
    """`path` as validation resolved it, checked again just before a render opens it: a file
    swapped for a symlink (or a folder above it for a link) since validation would now lead
    elsewhere, possibly out of the storyboard's folders. Paths the resolver records are fully
    resolved, so any link met on the way now changes the resolved path."""
    path = Path(path)
    now = Path(os.path.realpath(path))
    if now != path:
        raise ImageRefError(f"{what} {path} changed since the storyboard was validated: it now "
                            f"leads to {now}; restore it, or run again to validate it anew")
    return path


# Every file a storyboard names goes through the same resolver; the name says so.
FileResolver = ImageResolver
