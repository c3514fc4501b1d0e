"""torch.export programs from real code: dict and tuple outputs holding any result of a multi-output op,
pytree output classes the loading process does not know, and errors that blame the right thing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import cgviz


class GRUNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(4, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x):
        out, h_n = self.gru(x)
        return {"logits": self.head(out), "h_n": h_n}


class TupleNet(GRUNet):
    def forward(self, x):
        out, h_n = self.gru(x)
        return self.head(out), h_n


@pytest.mark.parametrize("cls", [GRUNet, TupleNet])
def test_a_program_returning_a_grus_h_n_draws_with_pytorchs_gradients(tmp_path, cls):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4)
    ep = torch.export.export(cls(), (x,))
    path = tmp_path / "gru.pt2"
    torch.export.save(ep, str(path))
    def every_output(out):
        """The sum of every float output, h_n included (the fallback would sum the logits alone)."""
        return sum(t.sum() for t in (out.values() if isinstance(out, dict) else out))
    d = cgviz.draw(path, loss=every_output)
    # plain PyTorch on the same program and the same loss
    m = torch.export.load(str(path)).module()
    loss = every_output(m(x))
    loss.backward()
    assert d.loss == pytest.approx(float(loss), rel=1e-5)
    for name, p in m.named_parameters():
        assert d[name].grad.stats["norm"] == pytest.approx(float(p.grad.norm()), rel=1e-4), name


def test_an_unregistered_output_class_is_named_with_the_fix(tmp_path):
    (tmp_path / "mylib.py").write_text(textwrap.dedent("""
        import dataclasses, torch
        import torch.utils._pytree as pytree

        @dataclasses.dataclass
        class Output:
            logits: torch.Tensor
            hidden: torch.Tensor

        pytree.register_dataclass(Output, serialized_type_name="mylib.Output")
    """))
    (tmp_path / "save.py").write_text(textwrap.dedent("""
        import torch, mylib
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.l = torch.nn.Linear(4, 3)
            def forward(self, x):
                h = self.l(x)
                return mylib.Output(h * 2, h)
        torch.export.save(torch.export.export(Net(), (torch.randn(2, 4),)), "out.pt2")
    """))
    subprocess.run([sys.executable, "save.py"], cwd=tmp_path, check=True, capture_output=True)
    cmd = [sys.executable, "-m", "cgviz", "torch", "out.pt2", "-f", "json", "-o", "out.json"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 1
    assert "returns a mylib.Output" in p.stderr and "--import mylib" in p.stderr
    assert "newer PyTorch" not in p.stderr and "--input-shape" not in p.stderr
    assert "Traceback" not in p.stderr and "W1" not in p.stderr         # torch's own log stays quiet
    p = subprocess.run(cmd + ["--import", "mylib"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(cmd + ["--import", "no_such_module_here"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2 and "No module named 'no_such_module_here'" in p.stderr


def test_a_forward_error_that_is_not_about_the_inputs_does_not_blame_them():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("the lookup table is empty")

    class WrongSize(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.l(x)

    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(Broken(), torch.randn(2, 3))
    assert "lookup table is empty" in str(e.value) and "input_size" not in str(e.value)
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(WrongSize(), torch.randn(2, 5))
    assert "cannot be multiplied" in str(e.value) and "Check input_size=" in str(e.value)
