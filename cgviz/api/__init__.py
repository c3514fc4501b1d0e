"""The Python front door, a package: its modules are split out of drawer.py (the old api.py) one job each."""

from __future__ import annotations


def __getattr__(name: str):
    # every name of the old cgviz.api module, from where it lives while the split goes on
    import importlib
    return getattr(importlib.import_module(".drawer", __name__), name)
