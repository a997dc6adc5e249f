"""Every download test talks to 127.0.0.1 only, with a socket timeout as a guard."""

import socket

import pytest


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # never route the loopback requests through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # a guard: code that forgets its own timeout fails these tests, not hangs them
    yield
    socket.setdefaulttimeout(previous)
