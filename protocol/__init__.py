"""numbex.protocol."""
