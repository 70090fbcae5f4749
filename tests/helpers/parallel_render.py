"""Rank 0's program in tests/engine/diffusers/test_parallel.py, run as
`python -m flows.parallel_launch tests.helpers.parallel_render MODEL OUT PARALLEL_JSON [OPTIONS_JSON]` under torchrun-style environment
variables: one tiny Wan T2V generation with engine.options.parallel, its frames saved to OUT
(.npy) and what happened to OUT.json. Ranks > 0 never run this; they follow (engine.diffusers.parallel).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def request(**kw):
    from engine.base import GenerationRequest

    base = dict(prompt="a lighthouse", width=64, height=64, num_frames=9, fps=16, seed=3,
                params={"steps": 2}, keep_latents=1)
    base.update(kw)
    return GenerationRequest(**base)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    from engine.diffusers.parallel import session as parallel
    from engine.diffusers.model_pool import ModelPool
    from engine.registry import get_engine

    model, out, parallel_json = argv[:3]
    options = {"device": "cpu", **(json.loads(argv[3]) if len(argv) > 3 else {})}
    engine = get_engine("wan21_t2v", model=model, pool=ModelPool(),
                        parallel=json.loads(parallel_json), **options)
    frames, latents = engine.generate_with_latents(request())
    again = engine.generate(request(seed=4))  # a second call: the followers keep in step
    np.save(out, frames)
    np.save(out + ".seed4.npy", again)
    sess = parallel.session()
    info = {"rank": sess.launch.rank if sess else None,
            "calls": sess.leader.calls if sess and sess.leader else None,
            "latents": None if latents is None else list(latents.shape),
            "runtime": engine.runtime(), "device": engine.device}
    with open(out + ".json", "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
