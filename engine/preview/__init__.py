"""The embedded `preview` engine: a deterministic CPU animatic renderer that needs no weights.

What one request renders, frame i of T (all in this order):

1. The world: the start image (cover-resized to W x H if needed) or, without one, a scene card:
   a seeded smooth colour gradient with a grid and scattered dots (so camera moves are visible),
   the shot id in large type and the prompt wrapped below it.
2. Motion: a few seeded soft-edged discs move along seeded smooth (Lissajous) paths in world
   coordinates, at a speed scaled by `params["motion"]` (default 1.0; 0 = no discs). Their
   opacity ramps linearly from 0 at frame 0 to full at frame `FADE_FRAMES`, so frame 0 is the
   start image exactly.
3. Camera: the world (with discs) is warped by relative_homography(camera[i], camera[0]) (see
   engine.geometry), bilinear with reflected borders. No camera = a static view.
4. Caption: with a start image (or `params["caption"] = True`), the segment prompt is shown in a
   band at the bottom of the screen, opacity min(1, 2 sin(pi i / (T - 1))), exactly 0 at the
   first and last frames. `params["caption"] = False` turns it off.
5. End image: the frames blend towards it with a smoothstep weight over the second half of the
   segment; the last frame is the end image exactly.
6. Cast reference: with `reference_images`, the first one is drawn over every frame as a square
   inset at the top-right (reference.py: reference_box, reference_inset), exactly, frames 0 and
   T - 1 included. Without references nothing changes.

Stills (`generate_image`, generated keyframes) are the scene card of the prompt titled with the
request's label, plus the same inset.

Same request, same pixels: every random choice comes from numpy Generators seeded from
request.seed (the background and the discs use separate streams). `REVISION` changes whenever the
output pixels for some request would change, because it goes into every cache key.

    engine.py   PREVIEW_SPEC, REVISION, FADE_FRAMES and PreviewEngine (steps 1-5 per frame)
    card.py     seeded colours, the scene card and the caption band
    motion.py   the moving discs
    reference.py the cast reference inset
"""

from .card import render_scene_card
from .engine import FADE_FRAMES, PREVIEW_SPEC, REVISION, PreviewEngine
from .reference import reference_box, reference_inset

__all__ = ["PREVIEW_SPEC", "REVISION", "FADE_FRAMES", "PreviewEngine", "render_scene_card",
           "reference_box", "reference_inset"]
