"""numbex.tools."""
