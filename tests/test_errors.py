"""The broken-program corpus: every user mistake in tests/broken/ gets a clean, located message.

Each table of tests/broken/cases.toml names one program (tests/broken/NAME.cg, or bytes given inline
as `content`) and what `cgviz render` must say about it: the exit status, the `file:line:col` and
caret, and the words of the message. Whatever the mistake, the user never sees a traceback, gets
one paragraph on standard error, and finds no output file left behind.

A case whose message falls short today carries `xfail = "why"`: the test keeps the message a user
needs and is marked xfail(strict=True), so it starts failing (as XPASS) the day cgviz is fixed.
"""

from __future__ import annotations

import ast
import re
import tomllib
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from cgviz.cli import main

BROKEN = Path(__file__).resolve().parent / "broken"
CASES: dict[str, dict] = tomllib.loads((BROKEN / "cases.toml").read_text(encoding="utf-8"))
KEYS = {"exit", "location", "contains", "absent", "args", "warning_line", "content", "xfail"}
MIN_CASES = 40
MAX_PEAK_BYTES = 64 * 2**20   # every program here is tiny; more means something was allocated first


def _params():
    for name, case in CASES.items():
        marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
        yield pytest.param(name, case, id=name, marks=marks)


def _program(name: str, case: dict, tmp_path: Path) -> tuple[Path, bytes]:
    """The program's path and bytes: a file of the corpus, or `content` written to a temporary file."""
    if "content" in case:
        data = ast.literal_eval(case["content"])
        path = tmp_path / f"{name}.cg"
        path.write_bytes(data)
        return path, data
    path = BROKEN / f"{name}.cg"
    return path, path.read_bytes()


_BLANKS = str.maketrans({"\t": " ", "\v": " ", "\f": " "})


def _source_line(data: bytes, line: int) -> str:
    """Line `line` as a person counts lines (only \\n ends one), one column per character."""
    lines = data.decode("utf-8-sig").split("\n")
    return lines[line - 1].rstrip("\r").translate(_BLANKS)


def _set_value_fault(case) -> bool:
    """A --set whose own text is wrong (unknown name, unreadable value), not a value the file rejects."""
    return "--set" in case.get("args", []) and "location" not in case and case["exit"] == 1


@pytest.mark.parametrize("name, case", list(_params()))
def test_error_message(name, case, tmp_path):
    path, data = _program(name, case, tmp_path)
    out = tmp_path / "out.dot"
    args = ["render", str(path), "--format", "dot", "-o", str(out), *case.get("args", [])]
    tracemalloc.start()
    try:
        result = CliRunner().invoke(main, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = result.stderr
    shown = f"exit {result.exit_code}; stderr:\n{err}"

    # Never a traceback, never an internal error, whatever happened.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r}\n{shown}")
    assert "Traceback" not in result.output and "Traceback" not in err, shown
    assert "internal error" not in err, shown
    assert result.exit_code == case["exit"], shown
    # A tensor too large is refused before it is allocated (numpy reports its buffers to tracemalloc).
    assert peak < MAX_PEAK_BYTES, f"peak allocation {peak / 1e6:.0f} MB\n{shown}"

    if case["exit"] != 0:
        # The message goes to stderr; nothing is written, not even a temporary file.
        assert err.strip(), shown
        assert result.stdout == "", f"stdout: {result.stdout!r}\n{shown}"
        assert not out.exists(), "a failing render wrote its output file"
        assert {p.name for p in tmp_path.iterdir()} <= {path.name}, "a failing render left files behind"
    else:
        assert out.exists(), shown

    if case["exit"] != 2:
        # One paragraph (click's usage errors, exit 2, keep click's own layout).
        assert "\n\n" not in err.strip("\n"), f"more than one paragraph\n{shown}"

    if case["exit"] == 1 and not _set_value_fault(case):
        assert err.startswith(str(path)), f"the message should start with the file's name\n{shown}"
    if _set_value_fault(case):
        # the mistake is on the command line: the message names the option, not the file
        assert err.startswith("--set "), f"a --set mistake should start with --set\n{shown}"

    if "location" in case:
        line, col = map(int, case["location"].split(":"))
        lines = err.splitlines()
        assert lines[0].startswith(f"{path}:{line}:{col}: "), (
            f"expected the message to start {path.name}:{line}:{col}:\n{shown}")
        gutter = f"{line:>4} | "
        text = _source_line(data, line)
        assert len(lines) >= 3, f"no source line and caret\n{shown}"
        assert lines[1].translate(_BLANKS) == gutter + text, (
            f"line {line} is not shown as {gutter + text!r}\n{shown}")
        caret = lines[2]
        assert caret.startswith(" " * (len(gutter) - 2) + "| "), shown
        assert re.fullmatch(r" *\| *\^+", caret), f"bad caret line {caret!r}\n{shown}"
        assert caret.index("^") - len(gutter) + 1 == col, f"the caret is not under column {col}\n{shown}"
        assert col <= len(text) + 1, f"column {col} lies past the end of line {line}\n{shown}"

    if "warning_line" in case:
        assert f"warning: {path}: line {case['warning_line']}: " in err, shown

    # The words are looked for in the message proper, not in the echo of the user's own line.
    message = "\n".join(ln for ln in err.splitlines() if not re.match(r" *(\d+)? \| ", ln))
    for s in case.get("contains", []):
        assert s in message, f"missing {s!r}\n{shown}"
    for s in case.get("absent", []):
        assert s not in message, f"should not say {s!r}\n{shown}"


# ---------------------------------------------------------------- the corpus itself

def test_the_corpus_is_large_enough():
    assert len(CASES) >= MIN_CASES, f"{len(CASES)} cases; the corpus promises at least {MIN_CASES}"


def test_every_file_has_a_case_and_every_case_a_program():
    files = {p.stem for p in BROKEN.glob("*.cg")}
    inline = {name for name, case in CASES.items() if "content" in case}
    on_disk = set(CASES) - inline
    assert sorted(files - on_disk) == [], "files in tests/broken without a table in cases.toml"
    assert sorted(on_disk - files) == [], "tables in cases.toml without a file in tests/broken"
    assert sorted(inline & files) == [], "cases given both as content and as a file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_cases_are_well_formed(name):
    case = CASES[name]
    assert set(case) <= KEYS, f"unknown keys {sorted(set(case) - KEYS)}"
    assert case.get("exit") in (0, 1, 2)
    assert isinstance(case.get("contains", []), list) and isinstance(case.get("absent", []), list)
    assert case.get("contains") or case.get("location") or case.get("warning_line"), \
        "a case must check something about the message"
    if "location" in case:
        assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", case["location"])
    if "warning_line" in case:
        assert case["exit"] == 0, "warnings belong to runs that succeed"
    if "content" in case:
        assert isinstance(ast.literal_eval(case["content"]), bytes), "content must be a bytes literal"
    if "xfail" in case:
        assert isinstance(case["xfail"], str) and case["xfail"].strip(), "say why it fails"
