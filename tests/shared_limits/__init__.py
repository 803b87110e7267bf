"""Tests of shared limits: one budget in Redis for many clients and processes."""
