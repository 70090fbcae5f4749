"""Prefect flows and the command-line entry points; the only layer that imports prefect and hydra.

One thin module per command (`python -m flows.X`): render, series, enhance, models, calibrate,
compare, cache, manifest, schema, serve, submit, parallel_launch. What they share lives in
subpackages, each importing only those before it:

    runtime/   process plumbing: exit codes and the Hydra wrapper, the stop flag and signal
               handlers, Prefect's API (ephemeral or the machine's shared one)
    config/    render settings (defaults in conf/config.yaml only), Hydra composition without a
               command line, policies (images, output folder), engine configs, storage, weights
    pipeline/  one render: prepare (validate + plan), preflight (disk), the Prefect flow,
               segment guard, progress, report, watch mode
    deploy/    work across renders and machines: the series flow, publishing episodes
"""
