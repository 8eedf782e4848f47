"""A day with faults: the whole stack as separate processes, one part killed at a time."""
