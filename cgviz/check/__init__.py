"""Gradient checks: the expression engine and recorded models against PyTorch autograd."""
