"""The user's module, inputs and process given back as they were after a cgviz call: the model runs
on stand-in tensors, and the global random generators are put back.

A call that runs a model (`cgviz.draw`, `gradient_health`, `check_gradients`, the CLI, the pytest
fixture) runs inside `given_back()`. There `borrow(model)` puts a stand-in in place of every
parameter and buffer, as the run asks for it:
- a parameter's stand-in is a new `nn.Parameter` over the same memory (no copy), or the converted
  tensor for `dtype=`/`meta`: gradients accumulate into the stand-in's `.grad`, so the user's `.grad`
  and `requires_grad` are never touched, and neither are the user's weights by a dtype change;
- a buffer's stand-in is a copy (buffers are small): batch norm's running statistics and
  `num_batches_tracked` move in the copy.
When the outermost call ends, the module's own tensors go back in place (by `setattr`, so an RNN's
cached weight list follows), with every module's train/eval flag and hook dictionaries as they were,
and the random generators (torch's CPU, CUDA and MPS ones, Python's `random`, NumPy's global one)
are restored: the draw's `torch.manual_seed` does not repeat a training loop's shuffles.

A lazy module still without weights gets empty stand-ins, which its first forward fills; it is
given back lazy, with its class and initialisation hook. A module with a parameter of a subclass of
`nn.Parameter` (which a plain stand-in would not be) runs as a deep copy instead. This module
imports torch only once the caller has.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import random
import sys

_GUARD: contextvars.ContextVar = contextvars.ContextVar("cgviz_state_guard", default=None)

# The hook dictionaries an nn.Module keeps (those that exist in this torch version are kept).
HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
              "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
              "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


class _Guard:
    """Everything one outermost call changed, with the way back, undone in reverse order."""

    def __init__(self):
        self.undo: list = []
        self.torch_saved = False
        self._random = random.getstate()
        np = sys.modules.get("numpy")
        self._numpy = np.random.get_state() if np is not None else None
        if sys.modules.get("torch") is not None:      # (None: blocked, as a test does)
            self.save_torch()

    def save_torch(self) -> None:
        """torch's process-wide state: every random generator, the default dtype, grad mode, threads."""
        if self.torch_saved:
            return
        import torch
        self.torch_saved = True
        cpu = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state_all() if _cuda_ready(torch) else None
        mps = torch.mps.get_rng_state() if _mps_ready(torch) else None
        dtype, grad, threads = torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads()

        def back():
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
            if mps is not None:
                torch.mps.set_rng_state(mps)
            if torch.get_default_dtype() != dtype:
                torch.set_default_dtype(dtype)
            torch.set_grad_enabled(grad)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        self.undo.append(back)

    def restore(self) -> None:
        errors = []
        for back in reversed(self.undo):
            try:
                back()
            except Exception as e:          # the rest is still put back
                errors.append(e)
        self.undo.clear()
        random.setstate(self._random)
        np = sys.modules.get("numpy")
        if self._numpy is not None and np is not None:
            np.random.set_state(self._numpy)
        if errors:
            raise errors[0]


def _cuda_ready(torch) -> bool:
    # only a CUDA already in use: asking for its state would otherwise start it (seconds, and memory)
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _mps_ready(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


@contextlib.contextmanager
def given_back():
    """Run a cgviz call and give the user's modules, inputs and process back as they were (nested
    calls share the outermost one's guard). Also a decorator: `@given_back()`."""
    if _GUARD.get() is not None:
        yield
        return
    guard = _Guard()
    token = _GUARD.set(guard)
    try:
        yield
    finally:
        _GUARD.reset(token)
        guard.restore()


def _guard() -> _Guard:
    guard = _GUARD.get()
    if guard is None:
        raise RuntimeError("cgviz internal error: the model's state is changed outside given_back()")
    return guard


def seed(value: int) -> None:
    """Seed the global generators a model's dropout draws from, the user's state saved first: CPU,
    and CUDA/MPS only when in use (torch.manual_seed would queue a seed for a CUDA not yet started)."""
    import torch
    _guard().save_torch()
    torch.default_generator.manual_seed(value)
    if _cuda_ready(torch):
        torch.cuda.manual_seed_all(value)
    if _mps_ready(torch):
        torch.mps.manual_seed(value)


def active() -> bool:
    """Whether a cgviz call's guard is open (the model's state may be changed, to be given back)."""
    return _GUARD.get() is not None


def borrow(model, *, dtype=None, device=None, copy_params: bool = False):
    """The module to run: `model` with a stand-in for every parameter and buffer (converted to
    `dtype` (floating-point tensors only, as `Module.to` does) and moved to `device` when given),
    its flags and hooks recorded; all put back when the outermost `given_back()` ends. copy_params:
    parameters' stand-ins are copies too, for weights to be loaded into them. A module the stand-ins
    cannot serve is deep-copied instead (see the module's docstring)."""
    import torch
    guard = _guard()
    guard.save_torch()
    if _needs_copy(model, torch):
        # without grad: a deep copy of some modules (TorchScript's) is otherwise a clone whose
        # backward reaches the original's .grad
        with torch.no_grad():
            work = copy.deepcopy(model)
            if device is not None:
                work = work.to(device)
            if dtype is not None:
                work = work.to(dtype)
        for (_, p), (_, q) in zip(model.named_parameters(), work.named_parameters()):
            if not isinstance(q, torch.nn.parameter.UninitializedParameter):
                q.requires_grad_(p.requires_grad)
                q.grad = None
        return work
    modules = list(model.modules())
    # a lazy module becomes its non-lazy class on its first forward: its class is put back too
    flags = [(m, m.training, type(m)) for m in modules]
    hooks = [(d, dict(d)) for m in modules for d in _hook_dicts(m)]
    stand_ins: dict[int, torch.Tensor] = {}     # one stand-in per tensor: tied weights stay tied
    swapped = []
    try:
        for m in modules:
            for param, table in ((True, m._parameters), (False, m._buffers)):
                for name, t in list(table.items()):
                    if t is None:
                        continue
                    new = stand_ins.get(id(t))
                    if new is None:
                        new = stand_ins[id(t)] = _stand_in(t, param, not param or copy_params, dtype, device,
                                                           torch)
                    setattr(m, name, new)
                    swapped.append((m, name, t))
    except BaseException:
        _put_back(swapped, flags, hooks)
        raise
    guard.undo.append(lambda: _put_back(swapped, flags, hooks))
    return model


def _put_back(swapped, flags, hooks) -> None:
    for m, name, t in reversed(swapped):
        setattr(m, name, t)
    for m, training, cls in flags:
        m.training = training
        if type(m) is not cls:
            m.__class__ = cls
    for d, saved in hooks:
        if list(d.items()) != list(saved.items()):
            d.clear()
            d.update(saved)


def _hook_dicts(m) -> list:
    return [d for d in (getattr(m, name, None) for name in HOOK_DICTS) if isinstance(d, dict)]


def _needs_copy(model, torch) -> bool:
    """A parameter of a subclass of nn.Parameter (a quantized or distributed one) would lose what its
    class does in a plain stand-in."""
    plain = (torch.nn.Parameter, torch.nn.parameter.UninitializedParameter)
    return any(p is not None and type(p) not in plain for m in model.modules() for p in m._parameters.values())


def _stand_in(t, param: bool, copy: bool, dtype, device, torch):
    """A parameter over the same memory, a buffer's copy (`copy`), either converted when dtype or
    device differ. The user's gradient hooks on a parameter come along, so its gradient is the one
    PyTorch would give it; post-accumulate hooks (an optimizer stepping in backward) do not."""
    lazy = torch.nn.parameter
    if isinstance(t, lazy.UninitializedTensorMixin):
        # a lazy module's empty tensor: the first forward fills the stand-in, in the dtype asked for
        make = lazy.UninitializedParameter if param else lazy.UninitializedBuffer
        return make(requires_grad=t.requires_grad, device=device or t.device,
                    dtype=dtype if dtype is not None and t.dtype.is_floating_point else t.dtype)
    data = t.detach()
    if device is not None and data.device != torch.device(device):
        data = data.to(device)
    if dtype is not None and data.is_floating_point() and data.dtype != dtype:
        data = data.to(dtype)
    if copy and data.device == t.device and data.dtype == t.dtype:
        data = data.clone()
    if not param:
        return data.requires_grad_() if t.requires_grad and data.is_floating_point() else data
    new = torch.nn.Parameter(data, requires_grad=t.requires_grad)
    for hook in (t._backward_hooks or {}).values():
        new.register_hook(hook)
    return new


def lend_grad(t) -> None:
    """A leaf tensor the run accumulates a gradient into, not a stand-in (a tensor in a function's
    closure): its `.grad` is set aside, so the drawn gradient is this run's, and put back after."""
    guard = _GUARD.get()
    if guard is None:
        return
    grad = t.grad
    t.grad = None

    def back():
        t.grad = grad
    guard.undo.append(back)


def copied(x):
    """A copy of an input that is not a tensor, when a forward could change it in place (a cache it
    appends to); a module, a function, an immutable value, or what cannot be copied, as given."""
    import torch
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes, torch.dtype, torch.device,
                                   torch.nn.Module, type)) or callable(x):
        return x
    try:
        return copy.deepcopy(x)
    except Exception:
        return x
