"""snapkeep.api.functions."""
