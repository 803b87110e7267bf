"""Tests of the places the client meets other code: sync, telemetry, web, frames."""
