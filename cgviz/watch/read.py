"""`cgviz.watch.read`, as documented, is cgviz.cgw.read itself: the record's format lives below the views, the recorder above them."""

import sys

from ..cgw import read as _module

sys.modules[__name__] = _module
