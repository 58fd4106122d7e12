"""numbex.server."""
