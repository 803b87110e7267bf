"""Tests of the HTTP backends on the wire: every backend on every event loop."""
