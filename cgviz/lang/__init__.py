"""The expression language: grammar, parser, IR builder, op table, NumPy engine, explanations, training."""
