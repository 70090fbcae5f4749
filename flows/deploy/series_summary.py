"""What a series run reports: a result row per episode, the console summary and the Prefect
markdown artifact `series-NAME` (a row per episode with its contact sheet inline).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.deploy.series_plan import SeriesPlan
from flows.pipeline.run_meta import data_uri, md_cell


@dataclass
class EpisodeResult:
    episode: str
    status: str  # rendered | cached | failed
    seconds: float = 0.0
    segments_rendered: int = 0
    segments_cached: int = 0
    duration_s: float = 0.0
    video: str | None = None
    contact_sheet: str | None = None
    flow_run_id: str | None = None
    publish: str = "off"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


def summarize(plan: SeriesPlan, results: list[EpisodeResult], seconds: float) -> dict[str, Any]:
    count = {s: sum(r.status == s for r in results) for s in ("rendered", "cached", "failed")}
    return {"series": plan.name, "episodes": [r.as_dict() for r in results], **count,
            "wall_s": round(seconds, 3),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"Series {summary['series']}: {len(summary['episodes'])} episodes in "
             f"{summary['wall_s']:.1f}s: {summary['rendered']} rendered, {summary['cached']} "
             f"cached, {summary['failed']} failed"]
    for row in summary["episodes"]:
        if row["status"] == "failed":
            lines.append(f"  {row['episode']:<14} failed    {row['error']}")
        else:
            publish = "" if row["publish"] == "off" else f"  ({row['publish']})"
            lines.append(f"  {row['episode']:<14} {row['status']:<9} segments "
                         f"{row['segments_rendered']} rendered, {row['segments_cached']} cached"
                         f"  {row['video']}{publish}")
    return lines


def artifact_markdown(summary: dict[str, Any]) -> str:
    """The series artifact: a table of the episodes, then each episode's contact sheet under its
    own heading (inside the table, a sheet wide enough to read pushed the table past the UI's
    artifact panel, clipped). The table names each video by its file (a full path made the
    table wider than the panel); the console summary and the summary JSON keep the paths."""
    lines = [f"# Series {summary['series']}", "",
             f"{len(summary['episodes'])} episodes: **{summary['rendered']} rendered, "
             f"{summary['cached']} cached, {summary['failed']} failed** in "
             f"{summary['wall_s']:.1f} s (finished {summary['finished']})", "",
             "| episode | status | segments rendered / cached | length | video | publish |",
             "|---|---|---|---|---|---|"]
    sheets = []
    for row in summary["episodes"]:
        if row["status"] == "failed":
            lines.append(f"| {md_cell(row['episode'])} | **failed**: {md_cell(row['error'])} | | | | "
                         f"{row['publish']} |")
            continue
        sheet = row["contact_sheet"]
        uri = data_uri(Path(sheet), 480, quality=70) if sheet and Path(sheet).is_file() else None
        if uri:
            sheets += [f"### {md_cell(row['episode'])}", "", f"![{row['episode']}]({uri})", ""]
        video = Path(row["video"]).name if row["video"] else ""
        lines.append(f"| {md_cell(row['episode'])} | {row['status']} | "
                     f"{row['segments_rendered']} / {row['segments_cached']} | "
                     f"{row['duration_s']:.1f} s | `{md_cell(video)}` | {row['publish']} |")
    if sheets:
        lines += ["", "## Contact sheets", "", *sheets]
    return "\n".join(lines) + "\n"


def artifact_key(series: str) -> str:
    return "series-" + "".join(c if c.isalnum() else "-" for c in series.lower())
