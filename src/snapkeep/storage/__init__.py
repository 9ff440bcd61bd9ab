"""snapkeep.storage."""
