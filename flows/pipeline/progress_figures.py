"""The overall figure of a render's progress, from its counts (flows/pipeline/progress.py).

Each phase (keyframes, generated frames, post-processed frames, episode frames written) is
weighted by what a unit of it has cost so far, learnt from finished work: generating a frame
costs ~0.04 s on the preview engine and minutes on a big model, while interpolating one costs
~0.1 s, so no phase can be given a fixed share. Re-learning a cost moves the estimate either
way; the figure shown (`fraction`) is a ratchet over it, so it never goes backwards, and it
stays below 100% until the episode is written (`finished`).
"""

from __future__ import annotations

import time

# Until the episode is written the overall figure stays at or below this (it prints as 99%).
BEFORE_FINISH = 0.99
# Seconds per frame of writing the episode (concat + encode) until post-processing measured one.
ASSEMBLE_S_PER_FRAME = 0.01


class Figures:
    """Mixin of RenderProgress: reads its counts (gen_/post_/key_/assemble_ totals and done,
    _busy, _measured, _started, first_work, finished, _shown) under its `_out` lock."""

    def _learn(self, phase: str, label: str, frames: float) -> None:
        started = self._started.pop(label, None)
        if started is not None and frames > 0:
            self._busy[phase] += time.monotonic() - started
            self._measured[phase] += frames

    def _cost(self, phase: str) -> float:
        """Seconds per unit (a frame; a keyframe) of `phase`; another phase's figure until one
        is measured."""
        others = {"gen": ("post", "key"), "post": ("gen", "key"), "key": ("gen", "post")}
        for which in (phase, *others[phase]):
            if self._measured[which]:
                return max(self._busy[which] / self._measured[which], 1e-6)
        return 1.0

    def estimate(self) -> float:
        """The current estimate in [0, 1]: keyframes generated, frames generated, frames
        post-processed and episode frames written, each weighted by what a unit of its phase
        has cost so far. It may drop when a cost is re-learnt; `fraction` never does."""
        gen, post, key = self._cost("gen"), self._cost("post"), self._cost("key")
        assemble = (self._busy["post"] / self._measured["post"] if self._measured["post"]
                    else ASSEMBLE_S_PER_FRAME)
        total = (self.gen_total * gen + self.post_total * post + self.key_total * key
                 + self.assemble_total * assemble)
        if total <= 0:
            return 1.0
        done = self.gen_done * gen + self.post_done * post + self.key_done * key
        return min(done / total, 1.0)

    def fraction(self) -> float:
        """Overall progress shown: monotone, and 1.0 only once the episode is written."""
        with self._out:
            if self.finished:
                self._shown = 1.0
            else:
                self._shown = max(self._shown, min(self.estimate(), BEFORE_FINISH))
            return self._shown

    def eta_seconds(self) -> float | None:
        done = self.fraction()
        if self.first_work is None or done <= 0:
            return None
        elapsed = time.monotonic() - self.first_work
        return max(elapsed * (1 - done) / done, 0.0)
