"""The built Lark parser is cached in the user's cache folder: a cached parser parses exactly as a fresh one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cgviz.lang import parser

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_graphs").glob("*.cg"))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private cache folder and no parser built yet; the parser is rebuilt again afterwards."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CGVIZ_NO_PARSER_CACHE", raising=False)
    parser._lark.cache_clear()
    yield tmp_path
    parser._lark.cache_clear()


def _text(program) -> str:
    """The whole AST with positions; the Source object (the text and its name) prints as its id."""
    return re.sub(r"<cgviz\.errors\.Source object at 0x[0-9a-f]+>", "<source>", repr(program))


def _parse_all() -> list[str]:
    return [_text(parser.parse(p.read_text(encoding="utf-8"), p.name)) for p in SAMPLES]


def test_a_cached_parser_parses_every_sample_exactly_as_a_fresh_one(fresh, monkeypatch):
    assert SAMPLES
    monkeypatch.setenv("CGVIZ_NO_PARSER_CACHE", "1")
    uncached = _parse_all()
    assert not (fresh / "cgviz").exists()
    monkeypatch.delenv("CGVIZ_NO_PARSER_CACHE")
    parser._lark.cache_clear()
    first = _parse_all()                      # builds the parser and writes the cache
    files = list((fresh / "cgviz").glob("parser-*.lark"))
    assert len(files) == 1
    parser._lark.cache_clear()
    second = _parse_all()                     # loads the parser from the cache
    assert uncached == first == second


def test_a_damaged_cache_file_is_rebuilt(fresh):
    parser._lark()
    (cache,) = (fresh / "cgviz").glob("parser-*.lark")
    cache.write_bytes(b"not a parser\n")
    parser._lark.cache_clear()
    text = "x = 2\ny = x * x\n"
    assert _text(parser.parse(text)) == _text(parser.parse(text))
    parser._lark.cache_clear()
    os.environ["CGVIZ_NO_PARSER_CACHE"] = "1"
    try:
        want = _text(parser.parse(text))
    finally:
        del os.environ["CGVIZ_NO_PARSER_CACHE"]
    parser._lark.cache_clear()
    assert _text(parser.parse(text)) == want


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership")
def test_a_cache_folder_others_can_write_into_is_not_used(fresh):
    folder = fresh / "cgviz"
    folder.mkdir()
    folder.chmod(0o777)
    assert parser._parser_cache_file("g") is False
    folder.chmod(0o700)
    assert str(parser._parser_cache_file("g")).startswith(str(folder))


def test_the_expression_path_still_does_not_import_torch(tmp_path):
    code = ("import sys\nfrom cgviz.lang import parser\nparser.parse('x = 1\\ny = x + 2\\n')\n"
            "print('torch' in sys.modules)\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    for _ in range(2):                        # builds the cache, then loads it
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert r.stdout.strip() == "False"
