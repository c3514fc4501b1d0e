"""The drawing's vocabulary shared by every picture: its colours and font, and the two escapers every
label goes through (DOT strings, HTML-like labels), so no text from a user's file can add markup."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.colours import BACKWARD, FORWARD  # noqa: F401  (defined in core: gradient health reads the red too)
# DejaVu Sans has ∂, σ, ×, ‖, μ and Greek; names in Chinese, Japanese or Korean (损失) fall back to
# Noto Sans CJK (`make install` installs fonts-noto-cjk). Pango (PNG, PDF) reads the comma list as a
# family list and CSS (SVG) as font-family's; without the second font, Pango falls back to any font
# fontconfig finds with the glyphs, and draws boxes only if there is none.
FONT = "DejaVu Sans,Noto Sans CJK SC"

STEP = "#2e7d32"      # green: a param's value after a gradient-descent step


def quote(text: str) -> str:
    """A DOT double-quoted string whose content shows exactly `text` (newlines become line breaks)."""
    if '"' not in text and "\\" not in text and "\n" not in text and "\r" not in text:
        return f'"{text}"'      # most ids and values: nothing to escape (tens of thousands a picture)
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{body}"'


def html_text(text: str) -> str:
    """Text for an HTML-like label: escaped so it can only ever be text."""
    # Graphviz expands \G, \N, \L … even inside HTML labels (and after decoding &#92;); a doubled
    # backslash is its escape for one literal backslash.
    # html.escape's replacements, in its order (& first); importing the html package (and its
    # entity tables) cost ~2 ms of every `cgviz render` for these five.
    text = text.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;").replace("'", "&#x27;").replace("\n", "<BR/>")


def attrs(d: dict) -> str:
    parts = []
    for k in sorted(d):
        v = d[k]
        if isinstance(v, Html):
            parts.append(f"{k}=<{v.markup}>")
        else:
            parts.append(f"{k}={quote(str(v))}")
    return "[" + " ".join(parts) + "]"


@dataclass(frozen=True)
class Html:
    markup: str


@dataclass(frozen=True)
class Line:
    """One line of a node's label as data: what it says and how it is drawn. The DOT label is made
    from these (`lines_markup`), and so are the training page's frames, which redraw the lines."""

    text: str
    color: str | None = None
    bold: bool = False        # the whole line
    small: bool = False       # 9 points
    head: str = ""            # a bold lead-in before `text` (a declaration's name)

    def markup(self) -> str:
        body = html_text(self.text)
        if self.bold:
            body = f"<B>{body}</B>"
        if self.head:
            body = f"<B>{html_text(self.head)}</B>{body}"
        font = (' POINT-SIZE="9"' if self.small else "") + (f' COLOR="{self.color}"' if self.color else "")
        return f"<FONT{font}>{body}</FONT>" if font else body

    def row(self) -> list:
        """[text, colour, bold, small], as the training page's script draws a line."""
        return [self.head + self.text, self.color, self.bold or bool(self.head), self.small]


Row = Line | Html     # a line of a label or caption: as data, or markup made with html_text


def row_markup(row: Row) -> str:
    return row.markup if isinstance(row, Html) else row.markup()


def lines_markup(lines: list[Row]) -> Html:
    """A label of lines, one under the other."""
    return Html("<BR/>".join(row_markup(line) for line in lines))
