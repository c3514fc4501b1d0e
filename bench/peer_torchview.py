"""torchview drawing a model file, as its users do: the torchview row of bench/bench_torch.py.

    python bench/peer_torchview.py MODELFILE OUT.png    # also writes OUT.png.gv (the DOT source)

MODELFILE defines `model` and `example_inputs`. Prints a stderr line `timings: import X s, build X s,
graph X s, render X s` (cgviz's CGVIZ_TIMINGS format); torchview runs the forward pass itself,
inside draw_graph, so "graph" includes it. Depth 3 is torchview's default, spelt out.
"""

import time

t0 = time.perf_counter()
import runpy  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402,F401
import torchview  # noqa: E402


def main(model_file: str, out: str) -> None:
    t = [t0, time.perf_counter()]
    ns = runpy.run_path(model_file)                       # builds the model
    model, args = ns["model"], ns["example_inputs"]
    args = args() if callable(args) else args
    t.append(time.perf_counter())
    # a model built on the meta device (bench/twin_llama7b_meta.py) stays there: shapes only
    device = "meta" if any(p.device.type == "meta" for p in model.parameters()) else "cpu"
    graph = torchview.draw_graph(model, input_data=list(args), depth=3, device=device)
    source = graph.visual_graph.source
    t.append(time.perf_counter())
    png = graph.visual_graph.pipe(format="png")          # runs `dot -Tpng` on the source
    with open(out, "wb") as f:
        f.write(png)
    with open(out + ".gv", "w") as f:
        f.write(source)
    t.append(time.perf_counter())
    names = ("import", "build", "graph", "render")
    print("timings: " + ", ".join(f"{n} {b - a:.3f} s" for n, a, b in zip(names, t, t[1:])), file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/peer_torchview.py MODELFILE OUT.png")
    main(sys.argv[1], sys.argv[2])
