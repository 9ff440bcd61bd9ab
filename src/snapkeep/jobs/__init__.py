"""snapkeep.jobs."""
