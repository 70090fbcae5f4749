"""Audio-reactive schedules: the storyboard's `audio.reactive` mappings as values per frame.

Timing: the soundtrack is laid over the episode as stages.render.audio muxes it (`offset` > 0
delays it), so frame k of a shot sits at episode time `shot start + k / fps` and hears the audio
at that time minus `offset`. Shot starts follow the episode's assembly: each shot's length after
the post chain at the output rate, less the frames a crossfade/interpolated transition overlaps.
The timeline counts every shot of the storyboard, selected or not, so rendering a subset gives
the same pixels (and keys) as the full episode.

Envelopes: beats and onsets are impulses of 1 that decay exponentially with `decay` as the time
constant (exp(-dt / decay)); an impulse lands on the frame nearest to it (up to half a frame
early), so zoom peaks exactly on the beat's frame. Only the latest impulse counts (max, not sum),
so dense onsets never exceed `amount`. bass, mid, treble and loudness are 0..1 envelopes
(stages.audio.analysis). The value is `amount x envelope`, added to what the storyboard sets:
- camera params: per frame, added to the camera path's state;
- flow_shift, cfg: per segment, storyboard (or config) value + amount x mean envelope over the
  segment's frames (without one: the nominal base below, which dry_run names);
- hue, saturation, exposure: per episode frame, a colour grade (stages.post.audio_color).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from engine.base import CameraState
from stages.audio.analysis import AudioAnalysis
from stages.storyboard.schema.audio import IMPULSE_SOURCES, ReactiveMapping, param_kind

# The value a generation key has where neither storyboard nor config sets one (the diffusers
# engines' default cfg; Wan's flow shift at 480p). dry_run says when it is used.
NOMINAL_BASE = {"cfg": 5.0, "flow_shift": 3.0}
# Generation keys stay inside the schema's ranges whatever the audio adds.
GENERATION_LIMITS = {"cfg": (0.0, 30.0), "flow_shift": (0.01, 100.0)}


def envelope(analysis: AudioAnalysis, mapping: ReactiveMapping, times: np.ndarray,
             tolerance: float = 0.0) -> np.ndarray:
    """0..1 envelope of `mapping.source` at audio `times` (seconds of the audio file).
    `tolerance`: how early (seconds) a frame may take an impulse (half a frame period)."""
    times = np.asarray(times, np.float64)
    if mapping.source not in IMPULSE_SOURCES:
        return analysis.envelope_at(mapping.source, times)
    events = np.asarray(getattr(analysis, mapping.source), np.float64)
    if events.size == 0:
        return np.zeros_like(times)
    latest = np.searchsorted(events, times + tolerance, side="right") - 1
    since = np.maximum(times - events[np.maximum(latest, 0)], 0.0)
    return np.where(latest >= 0, np.exp(-since / mapping.decay), 0.0)


def shot_starts(vs: Any) -> dict[str, float]:
    """Episode time (seconds) at which each shot's first frame plays: shots back to back at
    the output fps after post, crossfades overlapping them, generated transitions' clips
    between them."""
    from stages.plan.animate import planned_shot
    from stages.plan.bridges import bridge_frames
    from stages.plan.chaining import chain_lead
    from stages.plan.timing import resampled_count, segment_lengths
    from stages.post.chain import chain_fps, chain_frames_out
    from stages.render.transitions import blend_frames
    from stages.storyboard.resolve import resolve_shot
    from stages.storyboard.schema import Chain

    post_fps = chain_fps(vs.post, vs.fps)
    out_fps = vs.output.fps or post_fps
    starts: dict[str, float] = {}
    clock = 0  # output frames
    previous: tuple[int, Any] | None = None  # (output frames, transition) of the shot before
    for number, shot in enumerate(vs.model.shots):
        rs = planned_shot(vs.engine, resolve_shot(shot, vs.model.defaults))
        lead = chain_lead(rs.chain or Chain(), vs.engine)
        pieces, _ = segment_lengths(vs, rs, lead)
        leads = [(1 if rs.chained else 0) if i == 0 else lead for i in range(len(pieces))]
        frames = sum(n - skip for (_, n), skip in zip(pieces, leads))
        count = resampled_count(chain_frames_out(vs.post, frames, vs.fps), post_fps, out_fps)
        if previous is not None:
            clock -= blend_frames(previous[1], out_fps, previous[0], count)
        starts[shot.id] = clock / out_fps
        clock += count
        transition = rs.transition or _cut()
        if transition.type == "generated" and number < len(vs.model.shots) - 1:
            # The bridge clip (stages.plan.bridges) plays between them, then cuts to the next.
            bridge = bridge_frames(vs, transition) - 2
            clock += resampled_count(chain_frames_out(vs.post, bridge, vs.fps), post_fps, out_fps)
            transition = _cut()
        previous = (count, transition)
    return starts


def _cut():
    from stages.storyboard.schema import Transition

    return Transition()


@dataclass
class ReactivePlan:
    """The resolved schedules of one storyboard; build_plan fills `shots` as it plans."""

    analysis: AudioAnalysis
    mappings: tuple[ReactiveMapping, ...]
    offset: float
    fps: int
    output_fps: float
    starts: dict[str, float]
    # shot id -> {"camera": {param: [per shot frame]}, "segments": [{index, param: value}]}
    shots: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[ReactiveMapping]:
        return [m for m in self.mappings if param_kind(m.param) == kind]

    def key_dict(self) -> dict[str, Any]:
        """What the episode key needs: the analysis (audio bytes + settings) and the mappings."""
        return {"analysis": self.analysis.key, "offset": self.offset,
                "mappings": [m.model_dump() for m in self.mappings]}

    def _audio_times(self, shot_id: str, first: int, count: int) -> np.ndarray:
        frames = np.arange(first, first + count, dtype=np.float64)
        return self.starts[shot_id] + frames / self.fps - self.offset

    def camera(self, shot_id: str, states: Sequence[CameraState],
               first: int) -> tuple[CameraState, ...]:
        """`states` (shot frames first, first + 1, ...) with the camera mappings added."""
        mappings = self.of("camera")
        if not mappings or not states:
            return tuple(states)
        times = self._audio_times(shot_id, first, len(states))
        added: dict[str, np.ndarray] = {}
        for m in mappings:
            value = m.amount * envelope(self.analysis, m, times, 0.5 / self.fps)
            added[m.param] = added.get(m.param, 0.0) + value
        # Recorded per shot frame; a chained shot's first segment starts at frame -1 (the frame
        # it shares with the shot before), which the shot does not show.
        record = self.shots.setdefault(shot_id, {}).setdefault("camera", {})
        skip = max(0, -first)
        for name, values in added.items():
            series = record.setdefault(name, [])
            series[len(series):] = [0.0] * (first + len(states) - len(series))
            series[first + skip:first + len(states)] = [round(float(v), 5) for v in values[skip:]]
        # Camera mappings name CameraState fields (validation: reactive_params).
        return tuple(replace(state, **{name: getattr(state, name) + float(values[i])
                                       for name, values in added.items()})
                     for i, state in enumerate(states))

    def params(self, shot_id: str, index: int, first: int, frames: int,
               params: dict[str, Any]) -> dict[str, Any]:
        """A segment's engine params with the generation mappings added (mean over its frames)."""
        mappings = self.of("generation")
        if not mappings:
            return params
        times = self._audio_times(shot_id, max(first, 0), frames)
        out = dict(params)
        entry: dict[str, Any] = {"index": index}
        for m in mappings:
            base = out.get(m.param)
            if base is None:
                base = NOMINAL_BASE[m.param]
                note = (f"{m.param} is set nowhere; audio adds to {base:g} (set {m.param}: in "
                        "the storyboard to choose the base)")
                if note not in self.notes:
                    self.notes.append(note)
            low, high = GENERATION_LIMITS[m.param]
            mean = float(envelope(self.analysis, m, times, 0.5 / self.fps).mean())
            out[m.param] = round(min(max(float(base) + m.amount * mean, low), high), 4)
            entry[m.param] = out[m.param]
        segments = self.shots.setdefault(shot_id, {}).setdefault("segments", [])
        segments[:] = [s for s in segments if s["index"] != index] + [entry]
        return out

    def color(self, frames: int, first_shot: str = "") -> dict[str, list[float]]:
        """Per episode frame (at the output rate): hue (degrees), saturation (fraction),
        exposure (stops) the colour grade adds; empty without colour mappings. The video starts
        at `first_shot` (a subset render starts later in the soundtrack's timeline)."""
        mappings = self.of("color")
        if not mappings or frames <= 0:
            return {}
        start = self.starts.get(first_shot, 0.0)
        times = start + np.arange(frames) / self.output_fps - self.offset
        curves: dict[str, np.ndarray] = {}
        for m in mappings:
            value = m.amount * envelope(self.analysis, m, times, 0.5 / self.output_fps)
            curves[m.param] = curves.get(m.param, 0.0) + value
        return {k: [round(float(v), 4) for v in vals] for k, vals in curves.items()}

    def graded(self, frames: Iterable[np.ndarray], count: int, first_shot: str = ""
               ) -> Iterable[np.ndarray]:
        """The episode's frames with the colour grade (stages.post.audio_color) applied (the
        manifest records the same curves, from `color`)."""
        curves = self.color(count, first_shot)
        if not curves:
            return frames
        from stages.post.audio_color import graded

        return graded(frames, curves)

    def summary(self, beats_shown: int = 8) -> list[str]:
        """dry_run's lines: tempo, beat times and what each mapping will do."""
        a = self.analysis
        shown = ", ".join(f"{b:.2f}" for b in a.beats[:beats_shown])
        more = f", ... ({len(a.beats)} beats)" if len(a.beats) > beats_shown else \
            f" ({len(a.beats)} beats)"
        lines = [f"audio: {a.duration:.2f}s, tempo {a.tempo:.1f} BPM, beats at {shown}{more} s"
                 + (f", offset {self.offset:+g}s" if self.offset else ""),
                 f"audio: {len(a.onsets)} onsets"]
        for m in self.mappings:
            lines.append("audio: " + self._describe(m))
        return lines + [f"audio: {n}" for n in self.notes]

    def _describe(self, m: ReactiveMapping) -> str:
        kind = param_kind(m.param)
        where = {"camera": "per frame", "generation": "per segment (mean over its frames)",
                 "color": "per episode frame (colour grade)"}[kind]
        if m.source in IMPULSE_SOURCES:
            events = getattr(self.analysis, m.source)
            what = f"on {len(events)} {m.source}, decay {m.decay:g} s"
            peak_at = f"; peak {m.amount:g} at {events[0] + self.offset:.2f} s" if events else ""
        else:
            values = np.asarray(self.analysis.envelopes[m.source])
            what = f"x {m.source} envelope (mean {values.mean():.2f})" if values.size else \
                f"x {m.source} envelope"
            peak_at = ""
            if values.size and values.max() > 0:
                t = int(values.argmax()) * self.analysis.hop_s + self.offset
                peak_at = f"; peak {m.amount * values.max():.3g} at {t:.2f} s"
        return f"{m.param} += {m.amount:g} {what}, {where}{peak_at}"

    def manifest(self, episode_frames: int = 0, first_shot: str = "") -> dict[str, Any]:
        """The resolved schedules for the manifest: per shot the camera values added per shot
        frame and the generation values per segment, and the episode's colour curves."""
        a = self.analysis
        return {
            "analysis": {"key": a.key, "duration": round(a.duration, 3),
                         "tempo": round(a.tempo, 2), "beats": list(a.beats),
                         "onsets": list(a.onsets)},
            "offset": self.offset,
            "mappings": [m.model_dump() for m in self.mappings],
            "shots": {sid: {"start": round(self.starts[sid], 4), **data}
                      for sid, data in self.shots.items()},
            "color": self.color(episode_frames, first_shot),
            "notes": list(self.notes),
        }


def reactive_plan(vs: Any) -> ReactivePlan | None:
    """The storyboard's schedules, or None when its audio has no `reactive` mappings."""
    audio = vs.model.audio
    analysis = getattr(vs, "audio_analysis", None)
    if audio is None or not audio.reactive or analysis is None:
        return None
    from stages.post.chain import chain_fps

    post_fps = chain_fps(vs.post, vs.fps)
    return ReactivePlan(analysis, tuple(audio.reactive), audio.offset, vs.fps,
                        vs.output.fps or post_fps, shot_starts(vs))
