"""Tests of the bulk engine: batching, fan-out, streaming, dedupe, following."""
