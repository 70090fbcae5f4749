"""Notifications when a render or a series ends: `notify:` (a list of Apprise URLs) in
conf/config.yaml, on the command line (`notify=[...]`) or at the top of a storyboard.

Apprise (a Prefect dependency) knows ~100 services: `mailto://`, `slack://`, `tgram://`,
`ntfy://`, `discord://`, `json://host/path` (a POST of JSON), `form://`... The message names the
episode (or series), its status, how long it took and where the video is; the contact sheet is
attached where the service takes attachments. A notification that cannot be sent is a warning
on the console, never a failed render. The episodes of a series do not notify one by one: the
series run sends one message with every episode.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence


def targets(*lists: Iterable[str] | None) -> list[str]:
    """The Apprise URLs of several sources (config, storyboard), each once, in order."""
    seen: list[str] = []
    for urls in lists:
        for url in urls or ():
            url = str(url).strip()
            if url and url not in seen:
                seen.append(url)
    return seen


def _scheme(url: str) -> str:
    # Apprise URLs carry tokens and passwords: a warning names only the service.
    return url.split("://", 1)[0] + "://..." if "://" in url else "(not a URL)"


@dataclass
class Notice:
    what: str  # "episode ep01", "series demo"
    status: str  # completed | failed | cancelled
    seconds: float
    lines: list[str] = field(default_factory=list)  # more `key: value` lines
    attachments: list[Path] = field(default_factory=list)
    run_url: str | None = None  # the run's page in the Prefect UI, last in the body

    def add_error(self, exc: BaseException) -> None:
        self.lines.append(f"error: {' '.join(str(exc).split())[:500] or type(exc).__name__}")

    @property
    def title(self) -> str:
        return f"reelforge: {self.what} {self.status}"

    @property
    def body(self) -> str:
        kind, _, name = self.what.partition(" ")
        head = [f"{kind}: {name}", f"status: {self.status}", f"duration: {self.seconds:.1f}s"]
        run = [f"run: {self.run_url}"] if self.run_url else []
        return "\n".join(head + self.lines + run)


def status_of(exc: BaseException | None) -> str:
    """A run's ending as a notice says it: completed (no exception), cancelled (Ctrl-C,
    SIGTERM) or failed."""
    from flows.runtime.hydra_cli import Terminated

    if exc is None:
        return "completed"
    return "cancelled" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "failed"


def send(urls: Sequence[str], notice: Notice,
         warn: Callable[[str], None] | None = None) -> int:
    """Send `notice` to every URL; returns how many took it. Never raises."""
    warn = warn or (lambda line: print(line, file=sys.stderr))
    if not urls:
        return 0
    try:
        import apprise
    except ImportError as exc:
        warn(f"warning: notifications not sent: {exc}")
        return 0
    files = [str(p) for p in notice.attachments if Path(p).is_file()]
    kind = {"completed": apprise.NotifyType.SUCCESS,
            "cancelled": apprise.NotifyType.WARNING}.get(notice.status, apprise.NotifyType.FAILURE)
    sent = 0
    for url in urls:
        try:
            target = apprise.Apprise()
            if not target.add(url):
                warn(f"warning: notify: {_scheme(url)} is not an Apprise URL Apprise knows; "
                     "nothing sent to it")
                continue
            attach = apprise.AppriseAttachment(files) if files else None
            if target.notify(body=notice.body, title=notice.title, attach=attach,
                             notify_type=kind):
                sent += 1
            else:
                warn(f"warning: notify: sending to {_scheme(url)} failed (the render itself "
                     "is unaffected)")
        except Exception as exc:  # noqa: BLE001 - a notification never fails a render
            warn(f"warning: notify: sending to {_scheme(url)} failed: {type(exc).__name__}")
    return sent
