"""numbex.feed."""
