"""Makes the small assets storyboards/music_video.yaml uses (committed; run again to remake them):

    python storyboards/assets/make_music_video_assets.py

- lighthouse_depth.png: a depth map of lighthouse.png drawn from its shapes (white = near): sky
  and sun far, the sea from the horizon towards the viewer, the cliff and the lighthouse near;
- waves.mp4: 3 s of a wave pattern rolling right (the control video of the middle shot);
- beat.flac: 8 s of kick drums at 120 BPM with a bass line (what the zoom and hue follow).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
W, H = 832, 480


def depth_map() -> np.ndarray:
    """Depth of lighthouse.png, 0 (far) .. 255 (near), from the picture's known shapes."""
    # The sky is not black (10x as far as white): at about 3x the lighthouse's distance, the
    # parallax between them is strong but keeps the tower in the frame for moderate moves.
    depth = np.full((H, W), 60, np.uint8)  # sky
    horizon = 360
    rows = np.linspace(90, 160, H - horizon).astype(np.uint8)  # the sea comes towards us
    depth[horizon:, :] = rows[:, None]
    cv2.circle(depth, (610, 300), 52, 70, -1)  # the sun, behind the sea
    cliff = np.array([[0, 330], [300, 300], [420, 340], [440, H - 1], [0, H - 1]], np.int32)
    cv2.fillPoly(depth, [cliff], 200)
    cv2.rectangle(depth, (172, 88), (240, 300), 220, -1)  # the lighthouse, on the cliff
    return depth


def waves(path: Path, seconds: float = 3.0, fps: int = 16) -> None:
    import imageio_ffmpeg

    w, h = 160, 96
    y, x = np.mgrid[0:h, 0:w]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264",
                                         output_params=["-crf", "30"], macro_block_size=16)
    writer.send(None)
    for i in range(int(seconds * fps)):
        level = 0.5 + 0.5 * np.sin(x / 9.0 - 2 * np.pi * i / fps + 0.4 * np.sin(y / 13.0))
        grey = (level * 200 + 28).astype(np.uint8)
        writer.send(np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2)))
    writer.close()


def beat(path: Path, seconds: float = 8.0, bpm: float = 120.0, rate: int = 11025) -> None:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    audio = np.zeros_like(t)
    for start in np.arange(0.25, seconds, 60.0 / bpm):  # kicks: a falling sine, fast decay
        k = (t >= start) & (t < start + 0.3)
        dt = t[k] - start
        audio[k] += 0.8 * np.sin(2 * np.pi * (50 + 90 * np.exp(-dt * 30)) * dt) * np.exp(-dt * 12)
    bass = 0.25 * np.sin(2 * np.pi * 55 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t / 4.0))
    soundfile.write(path, np.clip(audio + bass, -1, 1).astype(np.float32), rate, subtype="PCM_16")


def main() -> None:
    cv2.imwrite(str(HERE / "lighthouse_depth.png"), depth_map())
    waves(HERE / "waves.mp4")
    beat(HERE / "beat.flac")
    for name in ("lighthouse_depth.png", "waves.mp4", "beat.flac"):
        print(f"{name}: {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
