"""Pure scaling decisions, with no I/O."""
