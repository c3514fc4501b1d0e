"""The ONNX op table: each ONNX op type as one torch function, so autograd gives its gradients.

Each entry takes (inputs, attrs) — inputs a list of tensors (None for an omitted optional input),
attrs a dict of the node's attributes — and returns a tensor or a tuple of them. Shape-like inputs
(Reshape's shape, Slice's starts …) are int64 tensors read with `.tolist()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ONNX TensorProto data types → torch dtypes (the ones a model exported from PyTorch uses)
DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
          9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}


def _ints(t) -> list[int]:
    """A shape-like input: a tensor, or the Python list onnx_graph gives for one computed from shapes."""
    if isinstance(t, (list, tuple)):
        return [int(v) for v in t]
    if isinstance(t, (int, float)):
        return [int(t)]
    return [int(v) for v in t.reshape(-1).tolist()]


def _pads(attrs, nd: int) -> tuple[list[int], bool]:
    """ONNX pads [b1, b2, …, e1, e2, …] as conv's symmetric padding, or F.pad's list when asymmetric."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise NotImplementedError(f"auto_pad={attrs['auto_pad']!r}")
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    begin, end = pads[:nd], pads[nd:]
    return (begin, True) if begin == end else (pads, False)


def _asym(x, pads, nd, value=0.0):
    """F.pad with ONNX's [b1, b2, e1, e2] order (F.pad wants the last dimension first)."""
    spec = []
    for i in reversed(range(nd)):
        spec += [pads[i], pads[nd + i]]
    return F.pad(x, spec, value=value)


def conv(ins, a):
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    nd = w.dim() - 2
    pads, sym = _pads(a, nd)
    if not sym:
        x, pads = _asym(x, pads, nd), [0] * nd
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    return fn(x, w, b, stride=a.get("strides", [1] * nd), padding=pads, dilation=a.get("dilations", [1] * nd),
              groups=a.get("group", 1))


def conv_transpose(ins, a):
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    nd = w.dim() - 2
    pads, sym = _pads(a, nd)
    if not sym:
        raise NotImplementedError("asymmetric pads")
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
    return fn(x, w, b, stride=a.get("strides", [1] * nd), padding=pads,
              output_padding=a.get("output_padding", [0] * nd), groups=a.get("group", 1),
              dilation=a.get("dilations", [1] * nd))


def _pool(kind):
    def pool(ins, a):
        x = ins[0]
        k = a["kernel_shape"]
        nd = len(k)
        pads, sym = _pads(a, nd)
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            if not sym:
                x, pads = _asym(x, pads, nd, -math.inf), [0] * nd
            fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1]
            return fn(x, k, a.get("strides", [1] * nd), pads, a.get("dilations", [1] * nd), ceil_mode=ceil)
        if not sym:
            raise NotImplementedError("asymmetric pads")
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nd - 1]
        return fn(x, k, a.get("strides", [1] * nd), pads, ceil_mode=ceil,
                  count_include_pad=bool(a.get("count_include_pad", 0)))
    return pool


def gemm(ins, a):
    x, w = ins[0], ins[1]
    if a.get("transA", 0):
        x = x.transpose(0, 1)
    if a.get("transB", 0):
        w = w.transpose(0, 1)
    y = a.get("alpha", 1.0) * (x @ w)
    if len(ins) > 2 and ins[2] is not None:
        y = y + a.get("beta", 1.0) * ins[2]
    return y


def batch_norm(ins, a):
    if a.get("training_mode", 0):
        raise NotImplementedError("training_mode=1")
    x, scale, bias, mean, var = ins[:5]
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, a.get("epsilon", 1e-5))


def layer_norm(ins, a):
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    axis = a.get("axis", -1)
    axis = axis % x.dim()
    return F.layer_norm(x, x.shape[axis:], scale, bias, a.get("epsilon", 1e-5))


def _axes(ins, a, at: int = 1):
    """Axes from the attribute (older opsets) or from input `at` (newer)."""
    if "axes" in a:
        return list(a["axes"])
    if len(ins) > at and ins[at] is not None:
        return _ints(ins[at])
    return None


def _reduce(fn):
    def reduce(ins, a):
        x = ins[0]
        axes = _axes(ins, a)
        keep = bool(a.get("keepdims", 1))
        if axes is None or axes == []:
            if a.get("noop_with_empty_axes", 0) and axes == []:
                return x
            axes = list(range(x.dim()))
        return fn(x, dim=axes, keepdim=keep)
    return reduce


def reshape(ins, a):
    x, shape = ins[0], _ints(ins[1])
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def flatten(ins, a):
    x = ins[0]
    axis = a.get("axis", 1) % max(x.dim(), 1) if a.get("axis", 1) < 0 else a.get("axis", 1)
    return x.reshape(math.prod(x.shape[:axis]), -1)


def transpose(ins, a):
    perm = a.get("perm") or list(reversed(range(ins[0].dim())))
    return ins[0].permute(perm)


def unsqueeze(ins, a):
    x = ins[0]
    axes = sorted(ax % (x.dim() + len(_axes(ins, a))) for ax in _axes(ins, a))
    for ax in axes:
        x = x.unsqueeze(ax)
    return x


def squeeze(ins, a):
    axes = _axes(ins, a)
    return ins[0].squeeze() if axes is None else ins[0].squeeze(tuple(axes))


def concat(ins, a):
    return torch.cat([t for t in ins if t is not None], dim=a["axis"])


def split(ins, a):
    x, axis = ins[0], a.get("axis", 0)
    if len(ins) > 1 and ins[1] is not None:
        sizes = _ints(ins[1])
    elif "split" in a:
        sizes = list(a["split"])
    else:
        n = a.get("num_outputs") or a["_outputs"]
        size = -(-x.shape[axis] // n)
        sizes = [min(size, x.shape[axis] - i * size) for i in range(n)]
    return tuple(torch.split(x, sizes, dim=axis))


def slice_(ins, a):
    x = ins[0]
    starts, ends = _ints(ins[1]), _ints(ins[2])
    axes = _ints(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = _ints(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st < 0:
            raise NotImplementedError("negative steps")
        n = x.shape[ax]
        s, e = max(min(s + n if s < 0 else s, n), 0), max(min(e + n if e < 0 else e, n), 0)
        index[ax] = slice(s, e, st)
    return x[tuple(index)]


def gather(ins, a):
    x, idx = ins[0], ins[1].long()
    axis = a.get("axis", 0) % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    if axis == 0 and x.dim() == 2 and x.is_floating_point():
        return F.embedding(idx, x)          # an embedding lookup, as PyTorch exported it
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]))


def expand(ins, a):
    x, shape = ins[0], _ints(ins[1])
    shape = torch.broadcast_shapes(x.shape, tuple(shape))
    return x.expand(shape)


def constant_of_shape(ins, a):
    value = a.get("value")
    fill = value if value is not None else torch.zeros(1)
    return torch.full(_ints(ins[0]), fill.reshape(-1)[0].item(), dtype=fill.dtype)


def cast(ins, a):
    return ins[0].to(DTYPES[a["to"]])


def softmax(ins, a):
    return torch.softmax(ins[0], dim=a.get("axis", -1))


def log_softmax(ins, a):
    return torch.log_softmax(ins[0], dim=a.get("axis", -1))


def gelu(ins, a):
    approx = a.get("approximate", b"none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    return F.gelu(ins[0], approximate=approx)


def clip(ins, a):
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    return torch.clamp(ins[0], lo, hi)


def range_(ins, a):
    return torch.arange(ins[0].item(), ins[1].item(), ins[2].item(), dtype=ins[0].dtype)


def trilu(ins, a):
    k = _ints(ins[1])[0] if len(ins) > 1 and ins[1] is not None else 0
    return torch.triu(ins[0], k) if a.get("upper", 1) else torch.tril(ins[0], k)


def _binary(fn):
    return lambda ins, a: fn(ins[0], ins[1])


def _unary(fn):
    return lambda ins, a: fn(ins[0])


# One op, one definition: ONNX op type → torch function of (inputs, attrs).
OPS = {
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": lambda ins, a: (torch.div(ins[0], ins[1], rounding_mode="trunc")
                           if not ins[0].is_floating_point() else torch.div(ins[0], ins[1])),
    "Pow": _binary(torch.pow), "MatMul": _binary(torch.matmul), "Max": lambda ins, a: _fold(torch.maximum, ins),
    "Min": lambda ins, a: _fold(torch.minimum, ins), "Sum": lambda ins, a: _fold(torch.add, ins),
    "Equal": _binary(torch.eq), "Less": _binary(torch.lt), "Greater": _binary(torch.gt),
    "LessOrEqual": _binary(torch.le), "GreaterOrEqual": _binary(torch.ge),
    "And": _binary(torch.logical_and), "Or": _binary(torch.logical_or),
    "Where": lambda ins, a: torch.where(ins[0].bool(), ins[1], ins[2]),
    "Relu": _unary(torch.relu), "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh),
    "Exp": _unary(torch.exp), "Log": _unary(torch.log), "Sqrt": _unary(torch.sqrt), "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs), "Erf": _unary(torch.erf), "Reciprocal": _unary(torch.reciprocal),
    "Sin": _unary(torch.sin), "Cos": _unary(torch.cos), "Not": _unary(torch.logical_not),
    "Floor": _unary(torch.floor), "Ceil": _unary(torch.ceil),
    "Softplus": _unary(F.softplus), "Identity": _unary(lambda x: x),
    "LeakyRelu": lambda ins, a: F.leaky_relu(ins[0], a.get("alpha", 0.01)),
    "Elu": lambda ins, a: F.elu(ins[0], a.get("alpha", 1.0)),
    "HardSigmoid": lambda ins, a: torch.clamp(a.get("alpha", 0.2) * ins[0] + a.get("beta", 0.5), 0, 1),
    "Gelu": gelu, "Softmax": softmax, "LogSoftmax": log_softmax, "Clip": clip,
    "Dropout": lambda ins, a: ins[0],     # inference: the identity, as onnxruntime runs it
    "Conv": conv, "ConvTranspose": conv_transpose, "Gemm": gemm,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda ins, a: ins[0].mean(dim=tuple(range(2, ins[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda ins, a: ins[0].amax(dim=tuple(range(2, ins[0].dim())), keepdim=True),
    "BatchNormalization": batch_norm, "LayerNormalization": layer_norm,
    "ReduceMean": _reduce(torch.mean), "ReduceSum": _reduce(torch.sum), "ReduceMax": _reduce(torch.amax),
    "ReduceMin": _reduce(torch.amin),
    "Reshape": reshape, "Flatten": flatten, "Transpose": transpose, "Unsqueeze": unsqueeze,
    "Squeeze": squeeze, "Concat": concat, "Split": split, "Slice": slice_, "Gather": gather,
    "Expand": expand, "Shape": lambda ins, a: torch.tensor(ins[0].shape[a.get("start", 0):a.get("end")],
                                                           dtype=torch.int64),
    "Size": lambda ins, a: torch.tensor(ins[0].numel(), dtype=torch.int64),
    "Tile": lambda ins, a: ins[0].repeat(_ints(ins[1])),
    "ConstantOfShape": constant_of_shape, "Cast": cast, "Range": range_, "Trilu": trilu,
}


def _fold(fn, ins):
    out = ins[0]
    for t in ins[1:]:
        out = fn(out, t)
    return out


# Control flow holds subgraphs, which this interpreter does not run: said by name, never half-drawn.
CONTROL_FLOW = {"If", "Loop", "Scan"}
