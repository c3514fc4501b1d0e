"""Initializers for declarations (`randn(3, 4, seed=0)`, `zeros(5)`, …) and the element budget they obey."""

from __future__ import annotations

import math
import zlib
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import OpError
from ..core.spelling import spell

# A program whose tensors together would hold more elements than this is refused before they are
# allocated (50 million float64 = 400 MB), and so is any one tensor that big; `--max-elements` raises it.
# The total counts every declaration's value, every op's value, and with backward every gradient
# (each node's and each edge's).
MAX_ELEMENTS = 50_000_000
# What cgviz keeps about a node besides its tensors (its IR node, summaries, DOT and JSON), in
# elements of 8 bytes: a 100,000-line chain of ops on 4 elements took 574 MB to run, about 5 kB a
# node. A program may have max_elements // NODE_COST nodes, and never fewer than MIN_NODES (so a
# small --max-elements limits tensors, not the length of a program).
NODE_COST = 512
MIN_NODES = 100_000


def node_room(limit: int | None) -> int:
    """How many nodes a program may have under the element limit `limit` (None: the default)."""
    return max(MIN_NODES, (MAX_ELEMENTS if limit is None else int(limit)) // NODE_COST)


@dataclass(frozen=True)
class InitDef:
    name: str
    make: Callable[..., np.ndarray]
    signature: str
    doc: str


INITS: dict[str, InitDef] = {}


def _init(name, signature, doc):
    def deco(fn):
        INITS[name] = InitDef(name, fn, signature, doc)
        return fn
    return deco


def name_seed(name: str) -> int:
    """Without `seed=`, a declaration's random numbers come from its name: stable, and different per name."""
    return zlib.crc32(name.encode("utf-8"))


def whole(v):
    """A whole number written as one: 3, or 1e6 and 3.0 (an exponent makes a literal a float); else v."""
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    return v


def _text(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else repr(v)


def _shape(dims, what) -> tuple[int, ...]:
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    out = []
    for d in dims:
        d = whole(d)
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise OpError(f"{what}: dimensions must be whole numbers ≥ 0, got {_text(d)}")
        out.append(int(d))
    check_size(out, what, charge=True)
    return tuple(out)


@dataclass
class Budget:
    """The elements a program's run may hold in all, and those counted so far."""

    limit: int
    used: int = 0


_LIMIT: ContextVar[int] = ContextVar("cgviz_max_elements", default=MAX_ELEMENTS)
_BUDGET: ContextVar["Budget | None"] = ContextVar("cgviz_budget", default=None)


@contextmanager
def element_limit(limit: int | None):
    """Within the block, check_size refuses tensors above `limit` elements (None: the default), and
    the tensors charged to the block's Budget may not pass it together."""
    limit = MAX_ELEMENTS if limit is None else int(limit)
    token = _LIMIT.set(limit)
    budget = _BUDGET.set(Budget(limit))
    try:
        yield
    finally:
        _BUDGET.reset(budget)
        _LIMIT.reset(token)


def element_cap() -> int:
    """The most elements one tensor may have here (check_size's limit)."""
    return _LIMIT.get()


def budget() -> Budget | None:
    """The running total of the program being evaluated (None outside element_limit)."""
    return _BUDGET.get()


def check_size(shape, what, limit: int | None = None, charge: bool = False) -> None:
    """Refuse a tensor too large for memory before allocating it; `charge`: count it in the
    program's total too (a declaration's value, made as the program is built)."""
    limit = _LIMIT.get() if limit is None else limit
    n = math.prod(shape)
    if n > limit:
        raise OpError(f"{what}: {'×'.join(map(str, shape))} is {n:,} elements, over the limit of "
                      f"{limit:,} (about {_bytes(limit * 8)}); raise it with {spell('max_elements')} "
                      "if you really mean it")
    b = _BUDGET.get()
    if charge and b is not None:
        b.used += n
        if b.used > b.limit:
            raise OpError(f"{what}: with this, the program's declarations hold {b.used:,} elements (about "
                          f"{_bytes(b.used * 8)}), past the limit of {b.limit:,} elements for all of its tensors "
                          f"together (about {_bytes(b.limit * 8)}). Raise it with {spell('max_elements')} if you "
                          "really mean it")


def too_many(what: str, room: int, where: str) -> str:
    """The message of a program with more nodes than node_room allows."""
    return (f"{what} pass the {room:,} a program may have (each takes about {NODE_COST * 8 / 1000:.0f} kB besides "
            f"its tensors; the room is {spell('max_elements')} / {NODE_COST}, and at least {MIN_NODES:,}), "
            f"from {where} on. Raise {spell('max_elements')} if you really mean it")


def over_budget(what: str, total: int, limit: int, where: str) -> str:
    """The message of a program whose tensors would pass the element budget: the total, the limit,
    where it is passed (`where`: the place the error points at) and the way out."""
    return (f"{what} would hold {total:,} elements in all (about {_bytes(total * 8)}); {where} they pass "
            f"the limit of {limit:,} elements for all of them together (about {_bytes(limit * 8)}). Raise it "
            f"with {spell('max_elements')} if you really mean it")


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _rng(seed, name):
    if seed is None:
        seed = name_seed(name)
    seed = whole(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OpError(f"seed must be a whole number ≥ 0, got {_text(seed)}")
    return np.random.default_rng(int(seed))


def _number(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        raise OpError(f"{what} must be a number, got {v!r}")
    return float(v)


@_init("randn", "randn(d0, d1, ..., seed=<from name>, scale=1.0)", "normal samples times scale")
def _randn(*dims, seed=None, scale=1.0, _name=""):
    shape = _shape(dims, "randn")
    return _rng(seed, _name).standard_normal(shape) * _number(scale, "scale")


@_init("rand", "rand(d0, d1, ..., seed=<from name>, lo=0, hi=1)", "uniform samples in [lo, hi)")
def _rand(*dims, seed=None, lo=0.0, hi=1.0, _name=""):
    shape = _shape(dims, "rand")
    lo, hi = _number(lo, "lo"), _number(hi, "hi")
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)) or hi < lo:
        raise OpError(f"rand: needs finite lo ≤ hi, got lo={lo:g}, hi={hi:g}")
    return _rng(seed, _name).uniform(lo, hi, shape)


@_init("zeros", "zeros(d0, d1, ...)", "all zeros")
def _zeros(*dims, _name=""):
    return np.zeros(_shape(dims, "zeros"))


@_init("ones", "ones(d0, d1, ...)", "all ones")
def _ones(*dims, _name=""):
    return np.ones(_shape(dims, "ones"))


@_init("full", "full(d0, d1, ..., value=V)", "every element V")
def _full(*dims, value=None, _name=""):
    if value is None:
        raise OpError("full needs value=, e.g. full(2, 3, value=7)")
    return np.full(_shape(dims, "full"), _number(value, "value"))


@_init("randint", "randint(lo, hi, shape=[d0, ...], seed=<from name>)",
       "integers in [lo, hi): class labels")
def _randint(lo, hi, shape=(), seed=None, _name=""):
    lo, hi = whole(lo), whole(hi)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (lo, hi)):
        raise OpError(f"randint: lo and hi must be whole numbers, got {_text(lo)} and {_text(hi)}")
    if hi <= lo:
        raise OpError(f"randint: hi ({hi}) must be above lo ({lo})")
    dims = _shape(tuple(shape) if isinstance(shape, (list, tuple)) else (shape,), "randint")
    return _rng(seed, _name).integers(int(lo), int(hi), dims, dtype=np.int64)


@_init("eye", "eye(n)", "the n×n identity")
def _eye(n, _name=""):
    n = whole(n)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise OpError(f"eye: dimensions must be whole numbers ≥ 0, got {_text(n)}")
    check_size((int(n), int(n)), "eye", charge=True)
    return np.eye(int(n))


@_init("arange", "arange(start, stop, step=1)", "evenly spaced values in [start, stop)")
def _arange(start, stop=None, step=1, _name=""):
    start, step = _number(start, "start"), _number(step, "step")
    if stop is None:
        start, stop = 0.0, start
    stop = _number(stop, "stop")
    if step == 0:
        raise OpError("arange: step cannot be 0")
    if not all(math.isfinite(v) for v in (start, stop, step, (stop - start) / step)):
        raise OpError(f"arange: start, stop and step must be finite, got {start:g}, {stop:g}, {step:g}")
    check_size((max(0, math.ceil((stop - start) / step)),), "arange", charge=True)
    return np.arange(start, stop, step, dtype=np.float64)


@_init("linspace", "linspace(start, stop, n)", "n evenly spaced values from start to stop")
def _linspace(start, stop, n, _name=""):
    (n,) = _shape((n,), "linspace")
    return np.linspace(_number(start, "start"), _number(stop, "stop"), n)


@_init("kaiming", "kaiming(fan_in, fan_out, seed=<from name>)",
       "He initialisation for ReLU layers: normal × √(2 / fan_in), laid out [in×out]")
def _kaiming(fan_in, fan_out, seed=None, _name=""):
    shape = _shape((fan_in, fan_out), "kaiming")
    return _rng(seed, _name).standard_normal(shape) * math.sqrt(2.0 / max(shape[0], 1))


@_init("xavier", "xavier(fan_in, fan_out, seed=<from name>)",
       "Glorot initialisation for sigmoid/tanh layers: uniform ±√(6 / (in + out))")
def _xavier(fan_in, fan_out, seed=None, _name=""):
    shape = _shape((fan_in, fan_out), "xavier")
    bound = math.sqrt(6.0 / max(shape[0] + shape[1], 1))
    return _rng(seed, _name).uniform(-bound, bound, shape)


def keywords(name: str) -> list[str]:
    """The keyword arguments an initializer accepts (for checking and did-you-mean)."""
    import inspect

    params = inspect.signature(INITS[name].make).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and not p.name.startswith("_")]


def make(name: str, args: list[Any], kwargs: dict[str, Any], decl_name: str) -> np.ndarray:
    """Run an initializer; argument mistakes come back as OpError with its signature."""
    d = INITS[name]
    try:
        value = d.make(*args, **kwargs, _name=decl_name)
    except TypeError as e:
        raise OpError(f"{name}: {_type_error_text(e)}; usage: {d.signature}") from None
    except (ValueError, OverflowError) as e:
        # NumPy refusing an argument (an int64 overflow, a seed out of range): the user's numbers
        raise OpError(f"{name}: {e}; usage: {d.signature}") from None
    return np.asarray(value)


def _type_error_text(e: TypeError) -> str:
    text = str(e)
    # "_randn() got an unexpected keyword argument 'sede'" → "unexpected keyword argument 'sede'"
    return text.split(") ", 1)[1] if ") " in text else text
