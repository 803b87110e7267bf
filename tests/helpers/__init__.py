"""What the tests of several areas share: the provider's data, servers, paths."""
