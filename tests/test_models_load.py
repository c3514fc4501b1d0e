"""Opening model files: kinds told from content, never code run unasked, every bad file a clear message."""

from __future__ import annotations

import os
import zipfile

import pytest
import torch
import torch.nn as nn

from cgviz.core.errors import CgvizError
from cgviz.pytorch.load import load_model, pickled_classes, sniff


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x).relu()


PY_MODEL = """
import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def forward(self, x):
        return self.fc(x)
model = Net()
example_inputs = (torch.randn(3, 4),)
def build():
    return Net()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("load")
    m = Tiny().eval()
    x = torch.randn(3, 4)
    torch.export.save(torch.export.export(m, (x,)), d / "m.pt2")
    torch.jit.save(torch.jit.script(m), d / "m.ts")
    torch.save(m.state_dict(), d / "m.state.pt")
    torch.save(m.state_dict(), d / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save((x,), d / "inputs.pt")
    (d / "net.py").write_text(PY_MODEL)
    (d / "renamed.bin").write_bytes((d / "m.pt2").read_bytes())     # suffix says nothing
    (d / "random.pt").write_bytes(os.urandom(2048))
    (d / "empty.pt").write_bytes(b"")
    (d / "truncated.pt2").write_bytes((d / "m.pt2").read_bytes()[:900])
    (d / "notes.txt").write_text("just some notes\nnot a model\n")
    return d


@pytest.mark.parametrize("name, kind", [("m.pt2", "export"), ("renamed.bin", "export"),
                                        ("m.ts", "torchscript"), ("net.py", "python")])
def test_kind_is_told_from_content(files, name, kind):
    loaded = load_model(str(files / name))
    assert loaded.kind == kind
    assert isinstance(loaded.model, torch.nn.Module)


def test_export_program_brings_its_example_inputs(files):
    loaded = load_model(str(files / "m.pt2"))
    assert loaded.example_args is not None and loaded.example_args[0].shape == (3, 4)


def test_python_file_with_factory(files):
    loaded = load_model(f"{files / 'net.py'}:build")
    assert loaded.kind == "python" and type(loaded.model).__name__ == "Net"


@pytest.mark.parametrize("name, words", [
    ("missing.pt", ["no such file", "torch.export"]),
    ("random.pt", ["not a model file", "torch.export"]),
    ("empty.pt", ["empty"]),
    ("truncated.pt2", ["damaged or truncated"]),
    ("notes.txt", ["not Python source"]),
    # called from Python, the advice names draw()'s keywords (the CLI's flags: tests/test_cli.py)
    ("m.state.pt", ["state_dict", "weights="]),
    ("legacy.pt", ["state_dict", "weights="]),
    ("inputs.pt", ["input_file="]),
])
def test_bad_files_say_what_they_are(files, name, words):
    with pytest.raises(CgvizError) as e:
        load_model(str(files / name))
    for w in words:
        assert w in str(e.value)


def test_folder_is_not_a_model(files):
    with pytest.raises(CgvizError, match="folder"):
        load_model(str(files))


def test_zip_member_escaping_the_folder_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("../../etc/evil", b"x")
    with pytest.raises(CgvizError, match="outside"):
        load_model(str(p))


class Boom:
    """Unpickling this runs os.system: the marker file shows whether it ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_pickle_that_would_run_a_command_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "evil.pt"
    torch.save({"model": Boom(str(marker))}, p)
    with pytest.raises(CgvizError) as e:
        load_model(str(p))
    assert "trust=True" in str(e.value) and "runs code" in str(e.value)
    assert "system" in str(e.value)             # names what it would import
    assert not marker.exists()


def test_pickled_module_needs_trust_and_loads_with_it(tmp_path, monkeypatch):
    # The class must be importable when unpickling, as for any torch.save(model).
    (tmp_path / "tinymod.py").write_text(PY_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    mod = importlib.import_module("tinymod")
    p = tmp_path / "whole.pt"
    torch.save(mod.model, p)
    assert "tinymod.Net" in pickled_classes(p.read_bytes())
    with pytest.raises(CgvizError, match="trust=True"):
        load_model(str(p))
    loaded = load_model(str(p), trust=True)
    assert loaded.kind == "module" and type(loaded.model).__name__ == "Net"


def test_weights_go_into_the_python_model(files, tmp_path):
    src = load_model(str(files / "net.py")).model
    sd = {k: torch.full_like(v, 0.5) for k, v in src.state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    loaded = load_model(str(files / "net.py"), weights=str(tmp_path / "w.pt"))
    assert torch.all(loaded.model.fc.weight == 0.5)


def test_weights_that_do_not_fit_name_the_keys(files, tmp_path):
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(CgvizError, match="missing 2: fc.weight"):
        load_model(str(files / "net.py"), weights=str(tmp_path / "w.pt"))


def test_python_file_errors_point_at_the_users_line(tmp_path):
    p = tmp_path / "broken.py"
    p.write_text("import torch\n\nmodel = torch.nn.Linear(2)\n")
    with pytest.raises(CgvizError) as e:
        load_model(str(p))
    assert "broken.py:3" in str(e.value) and "TypeError" in str(e.value)


def test_python_file_without_model_suggests_a_factory(tmp_path):
    p = tmp_path / "f.py"
    p.write_text("import torch\ndef make():\n    return torch.nn.Linear(2, 2)\n")
    with pytest.raises(CgvizError) as e:
        load_model(str(p))
    assert "f.py:make" in str(e.value)


def test_sniff_does_not_trust_suffixes(tmp_path):
    p = tmp_path / "model.py"
    data = b"PK\x03\x04garbage"
    with pytest.raises(CgvizError, match="damaged"):
        sniff(p, data)
