"""cgviz snapshot: manifests and their runner, the graph golden and its comparison, the worker processes."""
