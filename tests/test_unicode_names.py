"""Names in any script (issue 28): Python's identifier rule, NFKC-normalised, through every output;
and the message for a character that no name may hold."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from cgviz.core.errors import SourceError
from cgviz.lang.parser import parse
from cgviz.route.expression import evaluate

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")

PIZZA_ZH = ("# 披萨热量\ninput 重量 = 200\nparam θ = 0.5\nconst 实际 = 90\n"
            "预测 = relu(θ * 重量)\nloss 损失 = (预测 - 实际)^2\n")
NAMES = ("重量", "θ", "实际", "预测", "损失")


def _error(text: str) -> SourceError:
    with pytest.raises(SourceError) as e:
        parse(text, "t.cg")
    return e.value


def test_names_in_any_script_parse_as_python_reads_them():
    prog = parse("input α_1 = 1\nparam 重量 = 2\nconst नमस्ते = 3\nloss 损失 = α_1 * 重量 + नमस्ते\n")
    assert [s.name for s in prog.statements] == ["α_1", "重量", "नमस्ते", "损失"]
    for name in ("α_1", "重量", "नमस्ते", "损失"):
        assert name.isidentifier()


def test_names_are_nfkc_normalised_as_python_does():
    # full-width ｘ and mathematical italic 𝑥 are the name x, the ligature ﬁ is fi (PEP 3131)
    r = evaluate("input ｘ = 3\nparam ﬁ = 2\nloss L = (𝑥 * fi)^2\n", "t.cg")
    assert {n.name for n in r.graph.nodes if n.kind in ("input", "param")} == {"x", "fi"}
    assert r.run.grads["x"] == pytest.approx(2 * 6 * 2)


def test_a_normalised_keyword_is_still_a_keyword():
    e = _error("input ｉｎｐｕｔ = 3\n")
    assert "'input' is a keyword" in e.message and (e.line, e.col) == (1, 7)


@pytest.mark.parametrize("text, col, start", [("loss L = €a\n", 10, True), ("loss L = a€\n", 11, False),
                                              ("input 重量 = 1\nloss L = 重量‿€\n", 13, False)])
def test_a_character_no_name_may_hold_is_named_with_the_rule(text, col, start):
    e = _error(text)
    assert "'€' (U+20AC)" in e.message
    assert ("cannot start a name" if start else "cannot be part of a name") in e.message
    assert "letter (of any script" in e.hint and "'_'" in e.hint
    assert e.col == col
    shown = str(e.at(e.source) if e.source else e)
    assert shown.startswith(f"t.cg:{e.line}:{col}:")


def test_an_ascii_character_where_a_name_fits_says_which_start_one():
    e = _error("loss L = $a\n")
    assert "unexpected character '$'" in e.message and "expected a name" in e.message
    assert "starts with a letter (of any script" in e.hint


@pytest.mark.parametrize("text, says", [("x = 2 × 3\n", "write * instead"), ("x² = 1\n", "write ^2 instead"),
                                        ("x = a （1）\n", "write ( instead"), ("x = a，b\n", "write , instead"),
                                        ("x = a\u3000+ 1\n", "write a space instead")])
def test_lookalikes_from_papers_and_chinese_keyboards(text, says):
    assert says in _error(text).message


def test_the_caret_sits_under_the_character_after_wide_ones():
    e = _error("input 重量 = 1\nloss L = 重量€\n")
    lines = str(e).splitlines()
    code, caret = lines[1], lines[2]
    # 重量 takes four terminal columns: the caret is under the €, two columns further than its index
    assert code.index("€") + 2 == caret.index("^")


def test_explain_writes_the_chain_rule_and_aligns_columns_by_terminal_width(cli, tmp_path):
    from cgviz.core.textwidth import width
    f = tmp_path / "zh.cg"
    f.write_text(PIZZA_ZH, encoding="utf-8")
    r = cli("explain", f)
    assert r.exit_code == 0, r.output
    assert "∂损失/∂θ = ∂损失/∂预测 · ∂预测/∂θ = 20 · 200 = 4000" in r.stdout
    table = r.stdout.split("\n\n")[0].splitlines()
    head = width(table[0][:table[0].index("computes")])
    rows = [line for line in table[2:] if not line.startswith(" ")]
    # the second column starts at the header's terminal column in every row, though 预测 and 损失 are
    # two columns a character
    starts = {width(re.match(r"\S.*?  +", line).group()) for line in rows}
    assert len(rows) == 2 and starts == {head}


def test_set_takes_a_name_in_any_script_and_its_normal_form(cli, tmp_path):
    f = tmp_path / "zh.cg"
    f.write_text(PIZZA_ZH, encoding="utf-8")
    out = tmp_path / "o.json"
    assert cli("render", f, "-o", out, "--set", "θ=1", "-q").exit_code == 0
    d = json.loads(out.read_text(encoding="utf-8"))
    nodes = {n["id"]: n for n in d["nodes"]}
    assert nodes["θ"]["value"] == 1.0 and d["loss"] == "损失"
    # ϑ (the theta symbol) is θ once NFKC-normalised, as in Python
    assert cli("render", f, "-o", out, "--set", "ϑ=2", "-q").exit_code == 0
    assert {n["id"]: n for n in json.loads(out.read_text(encoding="utf-8"))["nodes"]}["θ"]["value"] == 2.0
    assert set(NAMES) <= set(nodes)


@needs_dot
def test_names_round_trip_through_dot_svg_html_and_json(cli, tmp_path):
    f = tmp_path / "zh.cg"
    f.write_text(PIZZA_ZH, encoding="utf-8")
    texts = {}
    for fmt in ("dot", "svg", "html", "json"):
        out = tmp_path / f"zh.{fmt}"
        r = cli("render", f, "-o", out, "-q")
        assert r.exit_code == 0, r.output
        texts[fmt] = out.read_text(encoding="utf-8")
    for name in NAMES:
        assert f'"{name}"' in texts["dot"]                      # node ids, quoted
    svg = ET.fromstring(texts["svg"].encode("utf-8"))
    shown = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    titles = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")}
    for name in NAMES:
        assert name in shown and name in titles
    blob = re.search(r'<script type="application/json" id="cgviz-data">(.*?)</script>', texts["html"], re.S)
    page = json.loads(blob.group(1))
    assert set(NAMES) <= set(json.dumps(page, ensure_ascii=False).split('"'))
    d = json.loads(texts["json"])
    assert set(NAMES) <= {n["id"] for n in d["nodes"]} and d["loss"] == "损失"


@pytest.mark.parametrize("call, says", [("σ(x)", "write sigmoid(...) for σ(...)"), ("Σ(x)", "write sum(...)")])
def test_a_textbooks_symbol_called_as_a_function_says_what_to_write(call, says):
    with pytest.raises(SourceError) as e:
        evaluate(f"input x = 1\nloss L = {call}\n", "t.cg")
    assert says in e.value.message and (e.value.line, e.value.col) == (2, 10)


def test_sigma_is_a_name_like_any_greek_letter():
    r = evaluate("param σ = 2\ninput x = 3\nloss L = (σ * x)^2\n", "t.cg")
    assert r.run.grads["σ"] == pytest.approx(2 * 6 * 3)
