"""snapkeep.daemon."""
