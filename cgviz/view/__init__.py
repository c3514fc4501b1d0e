"""Views of a run: pictures (DOT), JSON, the HTML page, plots, and the Graphviz runner."""
