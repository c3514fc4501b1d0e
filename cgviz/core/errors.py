"""User-facing errors: each one knows where in the input it happened and prints itself with a caret."""

from __future__ import annotations

from . import textwidth


class CgvizError(Exception):
    """A mistake in the user's input or environment; the CLI prints it and exits, never a traceback."""

    exit_code = 1


class OptionError(CgvizError):
    """Options that do not go together, or do not fit the source (a model option for an expression
    file): a usage mistake, which the command line shows with its usage line and exit status 2."""

    exit_code = 2


class SourceError(CgvizError):
    """An error at a place in a source file: rendered as `file:line:col: message`, the line, a caret."""

    def __init__(self, message: str, *, line: int | None = None, col: int | None = None,
                 source: "Source | None" = None, hint: str | None = None, width: int = 1):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.source = source
        self.hint = hint
        self.width = max(1, width)

    def at(self, source: "Source") -> "SourceError":
        """Attach the source text (errors raised deep in a pass learn their file late)."""
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        return format_located(self.message, self.source, self.line, self.col, self.hint, self.width)


class Source:
    """The text of one input file and the name to show for it."""

    def __init__(self, text: str, name: str):
        self.text = text
        self.name = name
        # Split on "\n" only, as the lexer counts lines: str.splitlines() would also split at form
        # feeds and U+2028, and the caret would then sit under the wrong line.
        self.lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""


def format_located(message: str, source: Source | None, line: int | None, col: int | None,
                   hint: str | None = None, width: int = 1) -> str:
    """`name:line:col: message`, then the offending line with a caret under the column."""
    name = source.name if source is not None else "<input>"
    where = name
    if line is not None:
        where += f":{line}"
        if col is not None:
            where += f":{col}"
    out = [f"{where}: {message}"]
    if source is not None and line is not None:
        # tabs count as one column, as the lexer counts them; other control whitespace is shown as a
        # space so the echoed line stays one line
        text = source.line_text(line).expandtabs(1).translate(_ONE_LINE)
        gutter = f"{line:>4} | "
        out.append(gutter + text)
        if col is not None:
            pad = " " * (len(gutter) - 2) + "| "
            # the caret under the character in a terminal: CJK characters before it take two columns
            lead = textwidth.width(text[:col - 1])
            under = textwidth.width(text[col - 1:col - 1 + width]) or 1
            out.append(pad + " " * lead + "^" * min(under, max(1, textwidth.width(text) - lead)))
    if hint:
        out.append(hint)
    return "\n".join(out)


_ONE_LINE = {ord(c): " " for c in "\f\v\x1c\x1d\x1e\x85\u2028\u2029"}


class OpError(CgvizError):
    """An op cannot run on the shapes or values it was given; the engine adds the source position."""


def did_you_mean(word: str, candidates) -> str:
    """A `did you mean 'x'?` suffix, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
