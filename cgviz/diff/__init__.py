"""Compare two runs: nodes matched by name then by structure, what changed in structure and numbers, one picture of it."""
