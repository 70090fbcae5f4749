"""One generation over several GPUs (`engine.options.parallel`): config.py reads the option,
model.py puts diffusers' context parallelism on the denoiser, leader.py sends rank 0's calls to
the other ranks, and session.py runs the processes (launched, follow; its docstring tells the
whole story)."""
