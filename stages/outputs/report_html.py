"""The render report: one self-contained HTML page next to the video, and its Markdown twin for
the Prefect UI.

The page shows the episode (linked relatively, so the render folder can be moved or served as
is), the contact sheet, one row per shot with its thumbnails (embedded as data URIs: they live in
the cache, which may be pruned), what made it (prompts, camera move, transition, engine and
profile), its timings and cache hits, the warnings, the provenance and, when the manifest has a
`run_url`, a link to the Prefect flow run.
Storyboard text (prompts, titles, warnings) is untrusted and always escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Mapping, Sequence

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1em 0} td,th{border-bottom:1px solid #ddd;
padding:.35em .5em;text-align:left;vertical-align:top} th{background:#f4f4f6}
.thumbs img{height:72px;margin-right:3px;border-radius:2px} .num{text-align:right}
.hit{color:#1a7f37} .miss{color:#9a6700} .warn{background:#fff8c5;padding:.5em 1em}
.badge{background:#ffebe9;color:#82071e;border-radius:3px;padding:0 .35em;font-size:12px}
video,.sheet{max-width:100%} code{font-size:12px} details{margin:1em 0}
.what{max-width:320px;font-size:13px;color:#444} .prompt{color:#222;font-style:italic}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _cache_word(cached: bool) -> str:
    return '<span class="hit">cached</span>' if cached else '<span class="miss">rendered</span>'


def _fallback_badge(seg: Mapping[str, Any]) -> str:
    """A fallback-rendered segment stands out: its frames are not the render engine's."""
    if not seg.get("fallback_reason"):
        return ""
    retimed = seg.get("retimed")
    how = f" (retimed {retimed[0]} -> {retimed[1]} frames)" if retimed else ""
    return (f' <span class="badge" title="{_e(seg.get("fallback_reason"))}; '
            f'{_e(seg.get("adapted") or "")}">fallback: {_e(seg.get("engine", ""))}{_e(how)}'
            f'</span>')


def _shot_details(shot: Mapping[str, Any]) -> str:
    """Prompt(s), camera move, transition, engine(s) and profile(s) of one shot, escaped."""
    segs = shot.get("segments", [])
    prompts = list(dict.fromkeys(s["prompt"] for s in segs if s.get("prompt")))
    parts = [f'<div class="prompt">{_e(p)}</div>' for p in prompts]
    camera = shot.get("camera") or {}
    parts.append("camera: " + (_e(", ".join(f"{k} {v:+g}" for k, v in camera.items()))
                               if camera else "still"))
    transition = shot.get("transition") or {}
    kind = transition.get("type", "cut")
    duration = f" {transition.get('duration', 0):g}s" if kind != "cut" else ""
    parts.append(f"transition: {_e(kind)}{_e(duration)}")
    engines = list(dict.fromkeys(s.get("engine") for s in segs if s.get("engine")))
    if engines:
        parts.append("engine: " + _e(", ".join(engines)))
    profiles = list(dict.fromkeys(s.get("profile") for s in segs if s.get("profile")))
    if profiles:
        parts.append("profile: " + _e(", ".join(profiles)))
    return '<td class="what">' + "<br>".join(parts) + "</td>"


def _run_link(manifest: Mapping[str, Any]) -> str:
    """' &middot; <a>Prefect run</a>' when the manifest knows the run's URL (http or https)."""
    url = str(manifest.get("run_url") or "")
    if not url.startswith(("http://", "https://")):
        return ""
    return f' &middot; <a class="run" href="{_e(url)}">Prefect run</a>'


def render_report_html(manifest: Mapping[str, Any],
                       thumbs: Mapping[str, Sequence[Path]] | None = None) -> str:
    thumbs = thumbs or {}
    m = manifest
    rows = []
    for shot in m.get("shots", []):
        segs = shot.get("segments", [])
        seg_cells = "<br>".join(
            f"#{s['index']}: {s['frames']} frames, seed {s['seed']}, {_cache_word(s['cached'])}"
            f" in {s['seconds']:.2f}s{_fallback_badge(s)}" for s in segs)
        images = "".join(f'<img alt="{_e(shot["id"])} frame" src="{_data_uri(p)}">'
                         for p in thumbs.get(shot["id"], []) if Path(p).is_file())
        gen_s = sum(s["seconds"] for s in segs)
        rows.append(
            f"<tr><td><b>{_e(shot['id'])}</b><br><a href=\"{_e(shot.get('video', ''))}\">"
            f"video</a></td>{_shot_details(shot)}<td class=\"thumbs\">{images}</td>"
            f"<td class=\"num\">{shot['frames']}<br>{shot['duration_s']:.2f}s</td>"
            f"<td>{seg_cells}</td><td class=\"num\">{gen_s:.2f}s<br>post "
            f"{shot.get('seconds', 0):.2f}s {_cache_word(shot.get('cached', False))}</td></tr>")
    warnings = m.get("warnings") or []
    warn_html = ("<div class=\"warn\"><b>Warnings</b><ul>"
                 + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></div>") if warnings else ""
    packages = ", ".join(f"{_e(k)} {_e(v)}" for k, v in (m.get("packages") or {}).items())
    identity = _e(", ".join(f"{k}={v}" for k, v in (m.get("engine_identity") or {}).items()))
    timings = m.get("timings") or {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(m.get('storyboard', 'render'))} - render report</title><style>{_CSS}</style></head>
<body>
<h1>{_e(m.get('title') or m.get('storyboard', ''))}</h1>
<p class="sub">{_e(m.get('storyboard_file', ''))} &middot; {_e(m.get('resolution', ''))} &middot;
{m.get('frames', 0)} frames, {m.get('duration_s', 0):.2f}s at {m.get('fps', 0):g} fps &middot;
engine {_e(m.get('engine', ''))} &middot; rendered {_e(m.get('created', ''))}{_run_link(m)}</p>
<p>Segments: <b>{m.get('segments_rendered', 0)} rendered</b>,
<b>{m.get('segments_cached', 0)} from the cache</b>; total time
{timings.get('total_s', 0):.1f}s.</p>
{warn_html}
<video controls preload="metadata" src="{_e(m.get('video', ''))}"></video>
<h2>Contact sheet</h2>
<img class="sheet" alt="contact sheet" src="{_e(m.get('contact_sheet', 'contact_sheet.png'))}">
<h2>Shots</h2>
<table><tr><th>shot</th><th>prompt, camera, transition, engine</th><th>thumbnails</th><th>frames</th><th>segments</th><th>time</th></tr>
{''.join(rows)}
</table>
<details><summary>Provenance</summary>
<p>Storyboard sha256 <code>{_e(m.get('storyboard_sha256', ''))}</code><br>
Episode key <code>{_e(m.get('key', ''))}</code><br>
Engine {identity}<br>{packages}</p>
<p>The full manifest is in <code>manifest.json</code> and inside the video's metadata
(<code>python -m flows.manifest {_e(m.get('video', ''))}</code>).</p></details>
</body></html>
"""


def render_report_markdown(manifest: Mapping[str, Any], report_path: str | None = None) -> str:
    m = manifest
    lines = [
        f"# {m.get('storyboard', '')}: {m.get('frames', 0)} frames, "
        f"{m.get('duration_s', 0):.2f}s at {m.get('fps', 0):g} fps",
        "",
        f"Engine **{m.get('engine', '')}**, {m.get('resolution', '')}; segments "
        f"**{m.get('segments_rendered', 0)} rendered**, **{m.get('segments_cached', 0)} cached**; "
        f"total {(m.get('timings') or {}).get('total_s', 0):.1f}s.",
        "",
        "| shot | frames | seconds | segments (rendered / cached) | generation s | post s |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for shot in m.get("shots", []):
        segs = shot.get("segments", [])
        cached = sum(s["cached"] for s in segs)
        lines.append(
            f"| {_md(shot['id'])} | {shot['frames']} | {shot['duration_s']:.2f} | "
            f"{len(segs) - cached} / {cached} | {sum(s['seconds'] for s in segs):.2f} | "
            f"{shot.get('seconds', 0):.2f}{' (cached)' if shot.get('cached') else ''} |")
    warnings = m.get("warnings") or []
    if warnings:
        lines += ["", "**Warnings**", ""] + [f"- {_md(w)}" for w in warnings]
    if report_path:
        lines += ["", f"Report: `{report_path}`"]
    if str(m.get("run_url") or "").startswith(("http://", "https://")):
        lines += ["", f"[Prefect run]({str(m['run_url']).replace(')', '%29')})"]
    return "\n".join(lines) + "\n"


def _md(text: Any) -> str:
    """Escape what Markdown (and the HTML it may contain) would interpret."""
    out = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")
