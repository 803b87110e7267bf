"""Tests that the README, the documentation site and the project files stay true."""
