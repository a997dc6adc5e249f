"""The runnable tasks: ``train``, ``evaluate``, ``predict``, ``export``, the benchmarks and the demo.

Each module holds one task as a plain function of a config (``train(cfg)``, ``evaluate(cfg)``, ...) and its
``main`` for the console script; ``scripts/*.py`` are thin Hydra wrappers around them. The top layer: nothing
else in the package imports it.
"""
