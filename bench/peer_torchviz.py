"""torchviz drawing a model file, as its users do: the torchviz row of bench/bench_torch.py.

    python bench/peer_torchviz.py MODELFILE OUT.png     # also writes OUT.png.gv (the DOT source)

MODELFILE defines `model` and `example_inputs` (like bench/resnet50_like.py). Prints a stderr line
`timings: import X s, build X s, forward X s, graph X s, render X s` in cgviz's CGVIZ_TIMINGS format.
torchviz walks the autograd graph from the output, so it needs no backward pass.
"""

import time

t0 = time.perf_counter()
import runpy  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402,F401
import torchviz  # noqa: E402


def main(model_file: str, out: str) -> None:
    t = [t0, time.perf_counter()]
    ns = runpy.run_path(model_file)                       # builds the model
    model, args = ns["model"], ns["example_inputs"]
    args = args() if callable(args) else args
    t.append(time.perf_counter())
    y = model(*args)
    t.append(time.perf_counter())
    dot = torchviz.make_dot(y.sum(), params=dict(model.named_parameters()))
    source = dot.source
    t.append(time.perf_counter())
    png = dot.pipe(format="png")                          # runs `dot -Tpng` on the source
    with open(out, "wb") as f:
        f.write(png)
    with open(out + ".gv", "w") as f:
        f.write(source)
    t.append(time.perf_counter())
    names = ("import", "build", "forward", "graph", "render")
    print("timings: " + ", ".join(f"{n} {b - a:.3f} s" for n, a, b in zip(names, t, t[1:])), file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/peer_torchviz.py MODELFILE OUT.png")
    main(sys.argv[1], sys.argv[2])
