"""snapkeep.sources."""
