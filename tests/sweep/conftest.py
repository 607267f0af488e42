"""Fixtures the sweep tests share (plain helpers are in tests/sweep/_helpers.py)."""

from __future__ import annotations

import socket

import pytest

from tests._required import missing


@pytest.fixture
def s3_server():
    """A real S3-compatible server (moto in server mode) on a free loopback port; yields
    its endpoint URL. Without moto[server]: skipped here, a failure under CI=true."""
    try:
        from moto import server as moto_server
    except ImportError:
        missing("moto[server]", "pip install 'moto[server]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
