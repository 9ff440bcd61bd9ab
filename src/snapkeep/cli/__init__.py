"""snapkeep.cli."""
