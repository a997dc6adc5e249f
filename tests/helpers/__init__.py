"""Shared test helpers: composed configs (``configs``), running the scripts (``scripts``), fake datasets in the
real layouts (``fakes``) and a tiny trained checkpoint (``inference``). ``tests/conftest.py`` holds the fixtures."""
