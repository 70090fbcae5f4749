"""What a render is told to do: RenderSettings (its defaults live in conf/config.yaml only),
Hydra composition from JSON-friendly parameters (compose), the policies on images and output
folders (policies), engine configs and fallbacks (engines), shared storage for the cache and
outputs (storage) and the weights check behind `python -m flows.models` (model_check).
Imports only flows.runtime and the layers below flows/."""
