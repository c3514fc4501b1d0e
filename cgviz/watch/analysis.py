"""`cgviz.watch.analysis`, as documented, is cgviz.cgw.analysis itself: the record's format lives below the views, the recorder above them."""

import sys

from ..cgw import analysis as _module

sys.modules[__name__] = _module
