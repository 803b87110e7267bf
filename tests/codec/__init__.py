"""Tests of the wire formats: request bodies, answers, rows and their models."""
