"""Sans-I/O protocol cores: synchronous, deterministic, driven by a runtime or the simulator.

Nothing here imports trio, sockets, threads or clocks: time comes in as ``now``,
randomness as an injected ``random.Random``.
"""
