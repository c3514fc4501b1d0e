"""The pizza graph drawn the way a torchviz user draws it: the baseline of bench/bench_render.py.

    python bench/torchviz_pizza.py OUT_STEM     # writes OUT_STEM (DOT source) and OUT_STEM.svg

Same expression as sample_graphs/pizza.cg: z = w * x, a = relu(z), L = (a - y)^2, with x = 200,
w = 0.5, y = 90. torchviz draws the autograd graph's structure (no values, no gradients), so it
does less than `cgviz render`, which also runs the forward and backward pass and labels every edge.
"""

import sys

import torch
import torchviz


def main(stem: str) -> None:
    x = torch.tensor(200.0, requires_grad=True)
    w = torch.tensor(0.5, requires_grad=True)
    y = torch.tensor(90.0)
    z = w * x
    a = torch.relu(z)
    L = (a - y) ** 2
    torchviz.make_dot(L, params={"x": x, "w": w}).render(stem, format="svg")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/torchviz_pizza.py OUT_STEM")
    main(sys.argv[1])
