"""The expression parser is Lark's stand-alone parser generated from grammar.lark (cgviz/lang/lalr.py):
it must come from this checkout's grammar and parse, and reject, every program exactly as Lark does."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from cgviz.lang import gen_parser, lalr, parser
from cgviz.lang.postlex import DropNewlinesInBrackets

import lark

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_graphs").glob("*.cg"))

BAD = ["x = (1 +\n", "x = 1 +* 2\n", "param = 3\n", "y = 1.2.3\n", "x = 2 × 3\n", "x == 1\n", "loss = \n",
       "x = [1, 2\n", "x = f(a=1, 2)\n", "input x = 1 2\n", "x = 'a'\n", "param loss = 1\n", "x = 1\n  )\n",
       "x = a.\n", "x = (1,\n 2)\n", "x = [\n1,\n2,\n]\n", "x = 2 ** -3 ^ 2\n", "x = -a^2 @ b / c\n", "\n\n",
       "x = 1 \\\n + 2\n", "# only a comment\n", "loss L = mean(x, axis=0) # note\n", "x = f(,)\n", "= 1\n"]


def _tree(t):
    """A parse tree (or token) as plain tuples: rule and token names, text and every position."""
    if isinstance(t, (lark.Token, lalr.Token)):
        return ("tok", t.type, str(t), t.line, t.column, t.end_line, t.end_column, t.start_pos, t.end_pos)
    m = t.meta
    pos = (m.line, m.column, m.end_line, m.end_column, m.start_pos, m.end_pos) if not m.empty else None
    return (str(t.data), pos, tuple(_tree(c) for c in t.children))


def _outcome(p, text: str):
    try:
        return _tree(p.parse(text))
    except (lark.exceptions.UnexpectedInput, lalr.UnexpectedInput) as e:
        tok = getattr(e, "token", None)
        return (type(e).__name__, e.line, e.column, getattr(e, "pos_in_stream", None),
                None if tok is None else (tok.type, str(tok)), sorted(getattr(e, "expected", None) or ()),
                sorted(getattr(e, "allowed", None) or ()))


def _programs() -> list[str]:
    """Every sample, the BAD list, and mutations of the samples (a character dropped, doubled or
    replaced by an operator or bracket), which reach the parser's error states all over the tables."""
    rng = random.Random(0)
    texts = [p.read_text(encoding="utf-8") for p in SAMPLES] + BAD
    out = list(texts)
    for text in texts[:len(SAMPLES)]:
        for _ in range(40):
            i = rng.randrange(len(text))
            c = rng.choice("()[]+-*/^@.,=\n 1x")
            out += [text[:i] + text[i + 1:], text[:i] + c + text[i:], text[:i] + c + text[i + 1:]]
    return out


def test_lalr_py_was_generated_from_this_grammar():
    assert lalr.GRAMMAR_SHA256 == gen_parser.grammar_hash(), \
        "grammar.lark changed since cgviz/lang/lalr.py was generated: run `python -m cgviz.lang.gen_parser`"


@pytest.mark.parametrize("often", [10**9, 0], ids=["terminals-one-by-one", "alternations"])
def test_the_generated_parser_parses_and_rejects_everything_as_lark_does(monkeypatch, often):
    """Both ways a scanner matches (lalr.Scanner: its terminals one by one until it is used often,
    then Lark's alternation of them) give Lark's tokens, trees and errors."""
    monkeypatch.setattr(lalr.Scanner, "OFTEN", often)
    fresh = lark.Lark(gen_parser.GRAMMAR.read_text(encoding="utf-8"), postlex=DropNewlinesInBrackets(),
                      **gen_parser.OPTIONS)
    ours = lalr.Lark_StandAlone(postlex=DropNewlinesInBrackets())        # scanners made with this OFTEN
    programs = _programs()
    assert len(programs) > 1000
    rejected = 0
    for text in programs:
        want = _outcome(fresh, text)
        assert _outcome(ours, text) == want, text
        rejected += isinstance(want[0], str) and want[0].startswith("Unexpected")
    assert rejected > 100          # the mutations do reach the error paths


def test_generating_again_works_with_the_installed_lark():
    code = gen_parser.generate()
    assert f"GRAMMAR_SHA256 = {lalr.GRAMMAR_SHA256!r}" in code
    assert gen_parser._REGEX_IMPORT not in code and gen_parser._NO_REGEX in code
    assert gen_parser._LAZY_LOGGER in code and "\nimport logging\n" not in code
    assert gen_parser._SHARED_SCANNER in code and code.count("class Scanner") == 1
    assert code.count("\n") > 1000


def test_lark_s_logger_is_set_up_on_first_use_as_lark_sets_it_up():
    """In a process without lark (whose import sets up the same "lark" logger): importing the parser
    does not import logging; the first use sets the logger up as Lark's own module does."""
    code = ("import sys\nfrom cgviz.lang import lalr\nassert 'logging' not in sys.modules\n"
            "import logging\nassert logging.getLogger('lark').level == logging.NOTSET\n"
            "lalr.logger.debug('x')\nlog = logging.getLogger('lark')\n"
            "print(lalr.logger.name, log.level == logging.CRITICAL, len(log.handlers))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.stdout.split() == ["lark", "True", "1"]


def test_the_expression_path_imports_neither_lark_nor_torch():
    code = ("import sys\nfrom cgviz.lang import parser\nparser.parse('x = 1\\ny = x + 2\\n')\n"
            "print(sorted(m for m in ('torch', 'lark', 'regex', 'logging') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.stdout.strip() == "[]"


def test_scanners_share_each_terminal_s_regex_and_compile_an_alternation_only_when_used_often():
    """The contextual lexer's scanners (one per set of terminals a parser state accepts) hold one
    compiled regex per terminal, the same object in every scanner; a scanner compiles Lark's
    alternation only after OFTEN uses, so a small program's parse compiles none."""
    lexer = lalr.Lark_StandAlone().parser.lexer                # the contextual lexer itself (no post-lexer)
    scanners = list({id(b): b.scanner for b in lexer.lexers.values()}.values())
    compiled: dict[str, object] = {}
    shared = 0
    for sc in scanners:
        for mre, name in sc._one_by_one:
            shared += name in compiled
            assert compiled.setdefault(name, mre) is mre
    assert len(scanners) > 5 and shared > len(compiled)
    sc = scanners[0]
    for _ in range(lalr.Scanner.OFTEN):
        sc.match(lalr.TextSlice.cast_from("x = 1"), 0)
    assert sc._mres is None
    sc.match(lalr.TextSlice.cast_from("x = 1"), 0)
    assert sc._mres is not None
