"""cgviz.watch.read: every complete record, a torn last line skipped, anything else refused with the file
and line; and neither the reader nor the analysis imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cgviz.core.errors import CgvizError
from cgviz.watch.read import read_run
from cgviz.watch.writer import Writer, header

from conftest import ROOT


def _step(k, loss=1.0):
    return {"step": k, "loss": loss, "scaled": False, "modules": {"act": {"mean": 0.5, "std": 0.1, "saturated": 0.2,
                                                                         "dead": None, "grad": 0.01, "in": [-12, 5]}},
            "params": {"fc.weight": {"w": 2.0, "g": 0.002, "ratio": 0.001, "update": 1e-4,
                                     "hist": {"lo": -1.0, "hi": 1.0, "counts": [1, 2, 3, 4]}, "nan": 0, "inf": 0}}}


def _write(path, *records):
    w = Writer(path)
    w.write(header("net.py", None, ["fc.weight"], ["act"]))
    for r in records:
        w.write(r)
    w.close()


def test_a_record_reads_back(tmp_path):
    p = tmp_path / "run.cgw"
    _write(p, _step(0), {"event": "nan", "step": 3, "module": "act", "op": "Sigmoid"}, _step(10, float("nan")))
    run = read_run(p)
    assert run.params == ["fc.weight"] and run.modules == ["act"] and run.source == "net.py"
    assert [s.step for s in run.steps] == [0, 10] and run.steps[1].loss != run.steps[1].loss
    ps = run.steps[0].params["fc.weight"]
    assert ps.hist_edges == [-1.0, -0.5, 0.0, 0.5, 1.0] and ps.hist_counts == [1, 2, 3, 4]
    assert run.steps[0].modules["act"].input_range == (-12, 5)
    assert run.events == [{"event": "nan", "step": 3, "module": "act", "op": "Sigmoid"}]
    assert not run.torn


def test_a_torn_last_line_is_skipped(tmp_path):
    p = tmp_path / "run.cgw"
    _write(p, _step(0), _step(1))
    with open(p, "a") as f:
        f.write(json.dumps(_step(2))[:40])       # the run was killed mid-write
    run = read_run(p)
    assert [s.step for s in run.steps] == [0, 1] and run.torn


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ('{"format": "cgviz-wat', "header is incomplete"),
    ('{"format": "other"}\n', "not a cgviz watch record"),
    ('{"format": "cgviz-watch", "version": 2}\n', "version 2; this cgviz reads version 1"),
    ('{"format": "cgviz-watch", "version": 1}\nnot json\n', ":2: not a JSON record"),
    ('{"format": "cgviz-watch", "version": 1}\n{"step": 0}\n', ":2: a step record with a missing"),
])
def test_what_is_not_a_record_is_refused_with_its_line(tmp_path, text, message):
    p = tmp_path / "run.cgw"
    p.write_text(text)
    with pytest.raises(CgvizError, match=message.replace("(", r"\(")):
        read_run(p)


def test_a_missing_file_is_said(tmp_path):
    with pytest.raises(CgvizError, match="no such file"):
        read_run(tmp_path / "nope.cgw")


def test_reading_and_analysing_never_import_torch(tmp_path):
    p = tmp_path / "run.cgw"
    _write(p, _step(0), _step(10))
    code = ("import sys, cgviz\nfrom cgviz.watch.read import read_run\nfrom cgviz.watch.analysis import events, diagnosis\n"
            f"r = read_run({str(p)!r}); events(r); diagnosis(r); callable(cgviz.watch)\n"
            "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\nprint('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr
