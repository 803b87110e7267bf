"""Tests of the simulator (``organik_async.testing``): protocol, data, faults, time."""
