"""A day with faults: the whole stack as separate processes, one part killed at a time."""

KINDS = ("worker", "bridge", "chain", "postgres", "redis")  # the parts a chaos day may kill
MINUTES = 180.0  # emulated minutes of trading, by default
FAULTS_EVERY_S = 600.0  # emulated seconds between faults, by default
