"""The report says what made each shot (prompts, camera move, transition, engine, profile),
escaped, keeps the fallback badge, and links the Prefect run when the manifest knows it."""

from __future__ import annotations

from stages.outputs.report_html import render_report_html, render_report_markdown


def manifest(**extra):
    seg = {"index": 0, "frames": 17, "seed": 1, "cached": False, "seconds": 1.0,
           "engine": "svd", "profile": "draft", "prompt": "a <b>boat</b>",
           "fallback_reason": "wan21 ran out of memory", "adapted": "i2v"}
    shot = {"id": "s01", "frames": 17, "duration_s": 1.0, "video": "shots/s01.mp4",
            "camera": {"zoom": 0.1, "pan_x": -0.05},
            "transition": {"type": "crossfade", "duration": 0.5, "prompt": None},
            "segments": [seg, dict(seg, index=1, prompt="the sea")]}
    return {"storyboard": "ep", "shots": [shot], **extra}


def test_each_shot_says_what_made_it():
    page = render_report_html(manifest())
    assert "a &lt;b&gt;boat&lt;/b&gt;" in page and "the sea" in page and "<b>boat" not in page
    assert "camera: zoom +0.1, pan_x -0.05" in page
    assert "transition: crossfade 0.5s" in page
    assert "engine: svd" in page and "profile: draft" in page
    assert 'class="badge"' in page and "fallback: svd" in page  # kept
    assert "Prefect run" not in page


def test_link_to_the_prefect_run_when_known():
    url = "http://127.0.0.1:4200/runs/flow-run/1234"
    page = render_report_html(manifest(run_url=url))
    assert f'<a class="run" href="{url}">Prefect run</a>' in page
    assert f"[Prefect run]({url})" in render_report_markdown(manifest(run_url=url))
    assert "Prefect run" not in render_report_html(manifest(run_url="javascript:alert(1)"))
