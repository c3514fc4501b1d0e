"""The floor of bench/bench_torch.py: what any tool drawing a model must at least do, nothing drawn.

    python bench/floor.py MODELFILE OUT.txt

Imports torch, runs the model file (builds the model), one forward and one backward pass of the
sum of the output (cgviz's default loss for a non-scalar output), and writes the loss to OUT.txt so
the bench can check that the run finished. Prints `timings: import X s, build X s, forward X s,
backward X s`.
"""

import time

t0 = time.perf_counter()
import runpy  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402


def main(model_file: str, out: str) -> None:
    t = [t0, time.perf_counter()]
    ns = runpy.run_path(model_file)
    model, args = ns["model"], ns["example_inputs"]
    args = args() if callable(args) else args
    t.append(time.perf_counter())
    y = model(*args)
    loss = y if y.dim() == 0 else y.sum()
    t.append(time.perf_counter())
    loss.backward()
    t.append(time.perf_counter())
    with open(out, "w") as f:
        f.write(f"{float(loss.detach())}\n")
    names = ("import", "build", "forward", "backward")
    print("timings: " + ", ".join(f"{n} {b - a:.3f} s" for n, a, b in zip(names, t, t[1:])), file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/floor.py MODELFILE OUT.txt")
    main(sys.argv[1], sys.argv[2])
