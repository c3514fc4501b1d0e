"""The core every layer shares: the IR, the run's result types, errors, how numbers and names are written, reading files."""
