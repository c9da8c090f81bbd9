"""Entry points: the worker process, the demo, and the wiring (bootstrap) every process starts from."""
