"""Tests of the ``organik-report`` command line."""
