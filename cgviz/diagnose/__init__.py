"""What is judged from a run's numbers: gradient health, where a NaN was born, the per-layer gradient table."""
