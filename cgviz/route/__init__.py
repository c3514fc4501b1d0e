"""The route: a source's run to output bytes in one call (an expression program, a model), above the views."""
