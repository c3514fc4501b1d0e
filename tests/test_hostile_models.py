"""Model files crafted to run code, escape their folder or crash the loader: each is refused with a
message, and nothing in them runs without --trust (extends tests/test_models_load.py)."""

from __future__ import annotations

import io
import os
import random
import zipfile

import pytest

import torch

from cgviz.core.errors import CgvizError  # noqa: E402
from cgviz.pytorch.load import load_model  # noqa: E402
from cgviz.pytorch.safety import check_members  # noqa: E402


class Boom:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    m = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    x = torch.randn(3, 4)
    torch.export.save(torch.export.export(m, (x,)), d / "m.pt2")
    torch.jit.save(torch.jit.trace(m, x), d / "m.ts")
    return d


def rewrite(src, dst, change):
    """Copy a zip, passing each member's (name, bytes) through `change` (None drops it)."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for info in z.infolist():
            data = change(info.filename, z.read(info.filename))
            if data is not None:
                out.writestr(info, data)
    return dst


def test_an_export_program_carrying_pickled_code_is_refused_and_runs_nothing(saved, tmp_path):
    """torch.export.load falls back to weights_only=False for example inputs: cgviz must not."""
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save(((Boom(marker),), {}), buf)
    evil = rewrite(saved / "m.pt2", tmp_path / "evil.pt2",
                   lambda n, d: buf.getvalue() if n.endswith("sample_inputs/model.pt") else d)
    with pytest.raises(CgvizError) as e:
        load_model(str(evil))
    assert "trust=True" in str(e.value) and "system" in str(e.value)
    assert not marker.exists()
    # the honest file still loads, with its example inputs, through the same guard
    assert load_model(str(saved / "m.pt2")).example_args[0].shape == (3, 4)


def test_an_export_program_with_native_code_is_refused(saved, tmp_path):
    evil = rewrite(saved / "m.pt2", tmp_path / "aoti.pt2", lambda n, d: d)
    with zipfile.ZipFile(evil, "a") as z:
        z.writestr("m/data/aotinductor/model/model.so", b"\x7fELF not really")
    with pytest.raises(CgvizError, match="native code .*trust=True"):
        load_model(str(evil))


def test_python_source_under_another_name_is_not_run(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "weights.pt"
    p.write_text(f"import os\nos.system('touch {marker}')\nmodel = None\n")
    with pytest.raises(CgvizError, match="not named .py"):
        load_model(str(p))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["m.pt2", "m.ts"])
@pytest.mark.parametrize("seed", range(6))
def test_corrupted_archives_are_clean_errors(saved, tmp_path, name, seed):
    data = bytearray((saved / name).read_bytes())
    r = random.Random(seed)
    for _ in range(20):
        data[r.randrange(len(data))] = r.randrange(256)
    p = tmp_path / name
    p.write_bytes(bytes(data))
    try:
        load_model(str(p))
    except CgvizError as e:
        assert str(e).strip()
    # a flip that only touched tensor bytes loads: also fine, it is still a valid archive


@pytest.mark.parametrize("name", ["m.pt2", "m.ts"])
@pytest.mark.parametrize("keep", [0.01, 0.5, 0.99])
def test_truncated_archives_are_clean_errors(saved, tmp_path, name, keep):
    data = (saved / name).read_bytes()
    p = tmp_path / name
    p.write_bytes(data[:max(4, int(len(data) * keep))])
    with pytest.raises(CgvizError):
        load_model(str(p))


def test_torchscript_from_a_newer_format_says_so(saved, tmp_path):
    newer = rewrite(saved / "m.ts", tmp_path / "newer.ts", lambda n, d: b"99\n" if n.endswith("/version") else d)
    with pytest.raises(CgvizError, match="newer PyTorch"):
        load_model(str(newer))
    newer = rewrite(saved / "m.pt2", tmp_path / "newer.pt2",
                    lambda n, d: b"9" if n.endswith("archive_version") else d)
    with pytest.raises(CgvizError, match="newer PyTorch"):
        load_model(str(newer))


@pytest.mark.parametrize("member", ["..\\..\\evil", "/abs/evil", "C:/evil", "m/../../evil"])
def test_members_escaping_the_folder_in_any_spelling_are_refused(tmp_path, member):
    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr(member, b"x")
    with pytest.raises(CgvizError, match="outside"):
        load_model(str(p))


def test_a_zip_bomb_is_refused_before_reading():
    info = zipfile.ZipInfo("m/data.pkl")
    info.compress_type = zipfile.ZIP_DEFLATED
    info.compress_size, info.file_size = 1_000_000, 10_000_000_000
    with pytest.raises(CgvizError, match="zip bomb"):
        check_members("x.pt", [info])
    info.compress_type = zipfile.ZIP_STORED            # a big stored tensor is just big
    check_members("x.pt", [info])


def test_hostile_files_exit_1_from_the_command_line(saved, tmp_path, cli):
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save(((Boom(marker),), {}), buf)
    evil = rewrite(saved / "m.pt2", tmp_path / "evil.pt2",
                   lambda n, d: buf.getvalue() if n.endswith("sample_inputs/model.pt") else d)
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "folder.pt").mkdir()
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "state.pt")
    for f in (evil, tmp_path / "empty.pt", tmp_path / "folder.pt", tmp_path / "state.pt"):
        r = cli("torch", f, "--format", "dot", "-o", tmp_path / "out.dot")
        assert r.exit_code == 1 and r.stderr.strip() and "Traceback" not in r.stderr, (f, r.stderr)
        assert "Logging error" not in r.stderr
    assert not marker.exists() and not (tmp_path / "out.dot").exists()
