"""Fetching a dataset: the pinned download, safe archive extraction and integrity checks."""
