"""snapkeep.api."""
