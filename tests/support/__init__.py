"""Helpers the tests import by name (`from tests.support.live_server import live_server`);
fixtures stay in conftest.py files."""
