"""`cgviz.watch.writer`, as documented, is cgviz.cgw.writer itself: the record's format lives below the views, the recorder above them."""

import sys

from ..cgw import writer as _module

sys.modules[__name__] = _module
