"""Reliability tests: the fault matrix, soak, cancellation fuzz, hostile answers."""
