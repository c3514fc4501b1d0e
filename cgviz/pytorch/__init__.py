"""`cgviz torch`: real PyTorch models drawn with forward values and gradients (imports torch lazily)."""
