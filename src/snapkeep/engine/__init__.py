"""snapkeep.engine."""
