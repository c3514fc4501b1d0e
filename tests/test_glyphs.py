"""Pictures of names in Chinese show the glyphs, not the missing-glyph box (issue 28): PNG, PDF and SVG.

The reference for "missing" is the same program drawn by the same Graphviz with fontconfig limited to
DejaVu, which has no CJK glyphs: Pango then draws a box with the code point in it."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from cgviz.view.markup import FONT

pytestmark = pytest.mark.skipif(shutil.which("dot") is None or shutil.which("fc-match") is None,
                                reason="needs Graphviz and fontconfig: `make install` installs them")

ROOT = Path(__file__).resolve().parent.parent
PIZZA_ZH = ("input 重量 = 200\nparam 权重 = 0.5\nconst 实际 = 90\n"
            "预测 = relu(权重 * 重量)\nloss 损失 = (预测 - 实际)^2\n")
EMBEDDED = re.compile(rb"/FontName\s*/[A-Z]{6}\+([A-Za-z0-9-]+)")


@pytest.fixture
def no_cjk_fonts(tmp_path):
    """The system's fontconfig file with its folders reset to DejaVu's alone: the same rendering
    settings (hinting, antialiasing), and a font that lacks the glyphs."""
    dejavu = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans"], capture_output=True, text=True).stdout
    conf = tmp_path / "fonts.conf"
    conf.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>'
                    f'<include ignore_missing="yes">/etc/fonts/fonts.conf</include><reset-dirs/>'
                    f"<dir>{Path(dejavu).parent}</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>\n")
    return str(conf)


def _draw(cli, tmp_path, text: str, fmt: str, tag: str) -> Path:
    # one file name for all (the caption shows it), in a folder per drawing
    (tmp_path / tag).mkdir()
    src = tmp_path / tag / "pizza.cg"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / tag / f"pizza.{fmt}"
    r = cli("render", src, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    return out


def _pixels(path: Path):
    with Image.open(path) as im:
        return im.size, im.convert("RGB").tobytes()


def test_the_font_list_names_a_cjk_font_that_has_the_glyphs():
    families = [f.strip() for f in FONT.split(",")]
    assert families[0] == "DejaVu Sans"
    # fontconfig's own answer: the families installed that hold 损 (U+635F) and 重 (U+91CD)
    covering = subprocess.run(["fc-list", ":charset=635f 91cd", "family"], capture_output=True, text=True).stdout
    assert any(f in covering for f in families[1:]), "no CJK font: `make install` installs fonts-noto-cjk"


def test_png_shows_the_glyphs_not_boxes(cli, tmp_path, monkeypatch, no_cjk_fonts):
    shown = _draw(cli, tmp_path, PIZZA_ZH, "png", "shown")
    plain = _draw(cli, tmp_path, (ROOT / "sample_graphs" / "pizza.cg").read_text(), "png", "plain")
    monkeypatch.setenv("FONTCONFIG_FILE", no_cjk_fonts)
    boxes = _draw(cli, tmp_path, PIZZA_ZH, "png", "boxes")
    plain_again = _draw(cli, tmp_path, (ROOT / "sample_graphs" / "pizza.cg").read_text(), "png", "plain_again")
    # the limited fontconfig changes nothing in a picture without CJK (the control) …
    assert _pixels(plain) == _pixels(plain_again)
    # … and the Chinese picture drawn with the CJK font is not the one drawn with boxes
    assert _pixels(shown) != _pixels(boxes)


def test_pdf_embeds_the_cjk_font(cli, tmp_path, monkeypatch, no_cjk_fonts):
    fonts = set(EMBEDDED.findall(_draw(cli, tmp_path, PIZZA_ZH, "pdf", "shown").read_bytes()))
    assert any(f.startswith(b"NotoSansCJK") for f in fonts), fonts
    assert b"DejaVuSans" in fonts                      # Latin text, digits and ∂ stay in DejaVu
    monkeypatch.setenv("FONTCONFIG_FILE", no_cjk_fonts)
    without = set(EMBEDDED.findall(_draw(cli, tmp_path, PIZZA_ZH, "pdf", "boxes").read_bytes()))
    assert not any(f.startswith(b"NotoSansCJK") for f in without)


def test_greek_names_are_drawn_in_dejavu(cli, tmp_path):
    fonts = set(EMBEDDED.findall(_draw(cli, tmp_path, "param θ = 2\ninput α_1 = 3\nloss η = (θ * α_1)^2\n",
                                       "pdf", "greek").read_bytes()))
    assert fonts and all(f.startswith(b"DejaVu") for f in fonts), fonts


def test_svg_text_asks_for_the_font_list(cli, tmp_path):
    svg = ET.parse(_draw(cli, tmp_path, PIZZA_ZH, "svg", "shown")).getroot()
    texts = [t for t in svg.iter("{http://www.w3.org/2000/svg}text") if "损失" in (t.text or "")]
    assert texts and {t.get("font-family") for t in texts} == {FONT}


def test_a_model_with_chinese_module_names_embeds_the_cjk_font(cli, tmp_path):
    # the case: a PyTorch model whose modules have Chinese names drew empty boxes
    import torch  # noqa: F401
    from conftest import named_layers_model
    model = tmp_path / "net.py"
    model.write_text(named_layers_model(["编码层", "输出层"]), encoding="utf-8")
    out = tmp_path / "net.pdf"
    r = cli("torch", model, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    fonts = set(EMBEDDED.findall(out.read_bytes()))
    assert any(f.startswith(b"NotoSansCJK") for f in fonts), fonts


def test_the_slides_pdf_embeds_the_cjk_font(cli, tmp_path):
    import pypdf  # noqa: F401
    src = tmp_path / "pizza_zh.cg"
    src.write_text(PIZZA_ZH, encoding="utf-8")
    out = tmp_path / "lesson.pdf"
    assert cli("render", src, "--steps", "-o", out, "-q").exit_code == 0
    fonts = set(EMBEDDED.findall(out.read_bytes()))
    assert any(f.startswith(b"NotoSansCJK") for f in fonts), fonts
