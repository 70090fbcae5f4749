"""The diffusers engines: one loading path, the model pool and one generation loop for every
diffusers video model (Wan, HunyuanVideo, LTX, CogVideoX, SVD).

    engine.py       DiffusersEngine, the base of every family (loading, pool, one request)
    per_call.py     per-call pipeline state: LoRAs, scheduler shift, expert boundary, step cache
    pipeline_io.py  frames out of a pipeline, images into it, quiet loading
    options.py      `engine.options`: DiffusersOptions, checked before anything loads
    accel.py        speed and memory options applied to a loaded pipeline (offload, compile, ...)
    attention.py    attention backend choice;  step_cache.py  first-block / MagCache step caches
    samplers.py     flow-matching schedulers by name;  model_pool.py  resident pipelines
    models/         where weights come from and how single checkpoint files load
    parallel/       one generation over several GPUs (context parallelism, torchrun processes)
    families/       the engines themselves, one module per family, specs beside classes

Nothing here imports torch or diffusers at module level: they load with the first pipeline.
"""
