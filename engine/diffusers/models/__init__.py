"""The weights of a diffusers engine: where they come from and how they load.

    source.py    `engine.model`: a diffusers folder or a hub id already in the local cache
                 (never downloaded), its pipeline layout, components and revision
    headers.py   what a single checkpoint file holds (safetensors / GGUF headers, quantization,
                 which component it is), read without loading the weights
    files.py     `engine.options.files`: single files checked against the folder's configs when
                 an engine is built, and which weights a folder lacks
    loading.py   loading those files as pipeline components (ComfyUI / original layouts, GGUF)
"""
