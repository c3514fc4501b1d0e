"""Write cgviz/lang/lalr.py, the expression language's parser, from grammar.lark (`make parser`).

    python -m cgviz.lang.gen_parser          # rewrites lalr.py; needs lark (the `test` extra)

lalr.py is Lark's own stand-alone parser (lark.tools.standalone: Lark's LALR runtime and the parse
tables built from grammar.lark, in one pure-Python module). `cgviz render` imports it instead of lark:
importing lark and loading a built parser took ~45 ms of a ~280 ms render; the stand-alone module
loads in a few. It is the same parser code and the same tables, so it parses, and fails, exactly as
Lark(grammar.lark) does. tests/test_parser_tables.py checks that lalr.py was generated from the
grammar.lark of the checkout (by its hash) and that both parse and reject the same programs alike.

Lark numbers its parse states in an order that varies from run to run (it follows hashes and
object addresses), so two generations of the same grammar differ in numbering, not in behaviour.

Five edits are made to Lark's output, each for the start-up of every `cgviz render`:
1. Its type annotations are left unevaluated (`from __future__ import annotations`): Lark reads
   none of them at run time, and building their typing objects was ~5 ms of the module's ~12 ms.
2. It imports typing.cast, which Lark 1.3's output uses (in Transformer_NonRecursive) without
   importing it.
3. It does not try `import regex` (the third-party module, ~10 ms, installed alongside by other
   packages). Lark uses it only to measure the width of a terminal whose pattern has Unicode
   categories (\\p{...}); widths are computed here, at generation time, and stored in the tables,
   and this grammar has no such pattern.
4. Its logger is set up on first use: Lark logs only while building a grammar or a cache, which the
   stand-alone parser never does, and importing logging (with string, traceback …) was ~3 ms.
5. Its Scanner tries its terminals one by one, each terminal's regex compiled once for all scanners,
   and compiles Lark's alternation `(?P<A>a)|(?P<B>b)|…` only once it has been used 64 times. The
   contextual lexer has a scanner per set of terminals a parser state accepts (12-14 for a small
   program), and Lark compiled an alternation of most of the grammar's terminals for each: ~4 ms of
   a render's first parse, where a small program uses each scanner a few times. A long program gets
   the alternations, faster per token, for the scanners it uses often. Either way the tokens are the
   same: an alternation matches with its first alternative that matches at the position (fullmatch:
   that matches the whole text), which is the first terminal in order that does, and a terminal
   matches alone as it does inside the alternation (Lark's patterns have no numbered
   back-references, and the outer group is always the last one named). tests/test_parser_tables.py
   checks both ways against Lark on over a thousand programs and mutations of them.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRAMMAR = HERE / "grammar.lark"
OUT = HERE / "lalr.py"

# Lark's options for this grammar; the post-lexer and propagate_positions may be given again when
# loading, but the parser kind and the tree shape (maybe_placeholders) are fixed by the tables.
# The lexer is Lark's contextual one (a lexer per parser state): a keyword reads as a name wherever
# only a name fits (`loss` in an expression), which the grammar and parser.py's messages rely on.
OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=False)

_REGEX_IMPORT = """try:
    import regex
    _has_regex = True
except ImportError:
    _has_regex = False
"""
_CAST = "from typing import cast    # cgviz: used below, missing from Lark's output (see gen_parser.py)\n"
_NO_REGEX = ("_has_regex = False     # cgviz: `regex` is not imported (see cgviz/lang/gen_parser.py)\n")


_LOGGING_IMPORT = "import logging\n"
_LOGGER = 'logger: logging.Logger = logging.getLogger("lark")\nlogger.addHandler(logging.StreamHandler())\n'
_LOGGER_LEVEL = "logger.setLevel(logging.CRITICAL)\n"
_LAZY_LOGGER = '''class _LarkLogger:
    """cgviz: Lark's logger, set up as Lark sets it up, on first use (see cgviz/lang/gen_parser.py)."""

    _logger = None

    def __getattr__(self, name):
        if _LarkLogger._logger is None:
            import logging
            _LarkLogger._logger = logging.getLogger("lark")
            _LarkLogger._logger.addHandler(logging.StreamHandler())
            _LarkLogger._logger.setLevel(logging.CRITICAL)
        return getattr(_LarkLogger._logger, name)


logger = _LarkLogger()
'''


def _lark_changed(what: str) -> SystemExit:
    """The stop when lark's output is no longer what one of the edits expects."""
    return SystemExit(f"lark's stand-alone output {what}: look at cgviz/lang/gen_parser.py against the "
                      "installed lark")


def lazy_logger(code: str) -> str:
    """Lark's output with its module-level logger set up on first use instead of at import."""
    if code.count(_LOGGER) != 1 or code.count(_LOGGER_LEVEL) != 1 or code.count(_LOGGING_IMPORT) != 1:
        raise _lark_changed("no longer sets up its logger as this script expects")
    code = code.replace(_LOGGING_IMPORT, "").replace(_LOGGER_LEVEL, "").replace(_LOGGER, _LAZY_LOGGER)
    if re.search(r"\blogging\.", code.replace(_LAZY_LOGGER, "")):
        raise _lark_changed("uses logging elsewhere")
    return code


_SCANNER = re.compile(r"^class Scanner:\n.*?(?=^def _regexp_has_newline)", re.S | re.M)
_SCANNER_METHODS = ["__init__", "_build_mres", "match", "fullmatch"]
_SHARED_SCANNER = '''class Scanner:
    """cgviz: a scanner tries its terminals one by one, each terminal's regex compiled once for every
    scanner (re's own cache), until it has been used OFTEN times; then it compiles Lark's one
    alternation of them, faster per token (see cgviz/lang/gen_parser.py)."""

    OFTEN = 64

    def __init__(self, terminals, g_regex_flags, re_, use_bytes):
        self.terminals = terminals
        self.g_regex_flags = g_regex_flags
        self.re_ = re_
        self.use_bytes = use_bytes

        self.allowed_types = {t.name for t in self.terminals}

        self._one_by_one = [(self.re_.compile(self._text(t.pattern.to_regexp()), self.g_regex_flags), t.name)
                            for t in terminals]
        self._mres = None
        self._uses = 0

    def _text(self, regexp):
        return regexp.encode('latin-1') if self.use_bytes else regexp

    def _often(self):
        """Count a use; past OFTEN uses, compile Lark's alternation (and say it is there)."""
        self._uses += 1
        if self._uses <= self.OFTEN:
            return False
        self._mres = self._build_mres(self.terminals, len(self.terminals))
        return True

    def _build_mres(self, terminals, max_size):
        mres = []
        while terminals:
            pattern = u'|'.join(u'(?P<%s>%s)' % (t.name, t.pattern.to_regexp()) for t in terminals[:max_size])
            try:
                mre = self.re_.compile(self._text(pattern), self.g_regex_flags)
            except AssertionError:  # too many named groups for one regex: split
                return self._build_mres(terminals, max_size // 2)

            mres.append(mre)
            terminals = terminals[max_size:]
        return mres

    def match(self, text: TextSlice, pos):
        if self._mres is None and not self._often():
            for mre, name in self._one_by_one:
                m = mre.match(text.text, pos, text.end)
                if m:
                    return m.group(0), name
            return None
        for mre in self._mres:
            m = mre.match(text.text, pos, text.end)
            if m:
                return m.group(0), m.lastgroup

    def fullmatch(self, text: str) -> Optional[str]:
        if self._mres is None and not self._often():
            for mre, name in self._one_by_one:
                if mre.fullmatch(text):
                    return name
            return None
        for mre in self._mres:
            m = mre.fullmatch(text)
            if m:
                return m.lastgroup
        return None

'''


def shared_scanner(code: str) -> str:
    """Lark's output with a Scanner that compiles each terminal once (see the module's docstring)."""
    found = _SCANNER.findall(code)
    if len(found) != 1 or re.findall(r"^    def (\w+)", found[0], re.M) != _SCANNER_METHODS \
            or "_mres" in code.replace(found[0], ""):
        raise _lark_changed("no longer has the Scanner this script replaces")
    return code.replace(found[0], _SHARED_SCANNER)


def grammar_hash(text: str | None = None) -> str:
    text = GRAMMAR.read_text(encoding="utf-8") if text is None else text
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generate() -> str:
    """The text of lalr.py for the grammar.lark next to this file."""
    import io

    from lark import Lark
    from lark.tools.standalone import gen_standalone

    grammar = GRAMMAR.read_text(encoding="utf-8")
    out = io.StringIO()
    # Without the post-lexer, as Lark's generator tool builds it (an object would not survive the
    # module's text); the parser is loaded with it. It keeps _NL, which the grammar uses anyway.
    gen_standalone(Lark(grammar, **OPTIONS), out=out)
    code = out.getvalue()
    if code.count(_REGEX_IMPORT) != 1:
        raise _lark_changed("no longer has the `import regex` block this script removes")
    code = code.replace(_REGEX_IMPORT, _NO_REGEX)
    code = lazy_logger(code)
    code = shared_scanner(code)
    if re.search(r"\bcast\(", code) and not re.search(r"^from typing import[^)]*\bcast\b", code, re.M):
        # Lark 1.3's output calls typing.cast (Transformer_NonRecursive.transform) without importing it.
        first = code.index("\nfrom copy import deepcopy\n")
        code = code[:first] + "\n" + _CAST + code[first + 1:]
    header = (
        "# cgviz's expression-language parser: GENERATED by `python -m cgviz.lang.gen_parser` (`make parser`)\n"
        "# from cgviz/lang/grammar.lark; do not edit, change the grammar and generate again.\n"
        "# Lark's stand-alone LALR parser (Mozilla Public License 2.0, below), with five edits: cast imported, no\n"
        "# `import regex`, annotations left unevaluated, its logger set up on first use, and scanners that try\n"
        "# their terminals one by one until used often (see gen_parser.py).\n"
        "from __future__ import annotations\n"
        f"GRAMMAR_SHA256 = {grammar_hash(grammar)!r}\n\n"
    )
    return header + code


def main() -> int:
    if sys.argv[1:]:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    code = generate()
    tmp = OUT.with_name(f".{OUT.name}.part")
    tmp.write_text(code, encoding="utf-8")
    os.replace(tmp, OUT)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
