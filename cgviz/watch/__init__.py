"""cgviz.watch: the gradient picture over training, recorded from the user's own loop into a .cgw file.

    with cgviz.watch(model, "run.cgw", every=10) as w:
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            w.step(loss)            # after backward, before the optimizer step
            opt.step()
            opt.zero_grad(set_to_none=True)

`cgviz.watch(...)` is `cgviz.watch.record.watch(...)`: this package is callable so that the function and
the names of the record's reader (`cgviz.watch.read`) and analysis (`cgviz.watch.analysis`) are one
name. Those two live in `cgviz.cgw`, below the views (the record's page reads them), while the
recorder here draws the model through the library, above the views; `cgviz.watch.read` is the very
module `cgviz.cgw.read`. Reading and analysing a record never imports torch.
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    """`cgviz.watch(model, path)` calls the recorder; `cgviz.watch.read` is still the reader's module."""

    def __call__(self, *args, **kwargs):
        from .record import watch
        return watch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
