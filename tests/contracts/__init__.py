"""What the client relies on from its libraries, pinned with their versions."""
