"""Tests of ``OrganikClient``: settings, lifecycle, errors, retries, secrets, tuning."""
