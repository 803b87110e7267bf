"""The test suite, one package per area; shared helpers in ``tests.helpers``."""
