"""The `cgviz` command line: thin click commands over the library; library errors become clean messages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import CgvizError
from .render import FORMATS, DEFAULT_TIMEOUT, write_atomic

# Exit statuses (documented in the README): 0 ok, 1 a mistake in the input or the environment,
# 2 a usage mistake (bad option), 3 an internal error (a bug in cgviz: please report it).
EXIT_INTERNAL = 3


class _Group(click.Group):
    """Turns anything unexpected into a one-line internal-error message instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except CgvizError as e:
            raise _user_error(e) from None
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None
        except BrokenPipeError:
            # `cgviz ops | head`: the reader has all it wanted. Point stdout at /dev/null so the
            # interpreter's final flush does not complain, and finish quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except Exception as e:  # a bug, not a user mistake
            if os.environ.get("CGVIZ_DEBUG"):
                raise
            click.echo(f"cgviz: internal error: {type(e).__name__}: {e}\n"
                       "This is a bug in cgviz; run again with CGVIZ_DEBUG=1 to see the traceback "
                       "and please report it.", err=True)
            ctx.exit(EXIT_INTERNAL)


class _UserError(click.ClickException):
    """A CgvizError shown as is (click would prefix 'Error: ', which hides the file:line:col)."""

    def show(self, file=None):
        click.echo(self.format_message(), err=True)


def _user_error(e: CgvizError) -> click.ClickException:
    err = _UserError(str(e))
    err.exit_code = getattr(e, "exit_code", 1)
    return err


@click.group(name="cgviz", cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cgviz")
def main():
    """Draw computation graphs with values flowing forward (blue) and gradients flowing back (red).

    \b
    Example:
        cgviz render sample_graphs/pizza.cg          # writes pizza.png here
        cgviz render pizza.cg -o pizza.svg --set w=0.1
    """


def _parse_sets(sets: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise click.UsageError(f"--set takes NAME=VALUE (for example --set w=0.1), got {item!r}")
        if name in out:
            raise click.UsageError(f"--set {name} is given twice")
        out[name] = value
    return out


def _suffix_format(output: str | None) -> str | None:
    if not output or output == "-":
        return None
    suffix = Path(output).suffix.lower().lstrip(".")
    return {"gv": "dot"}.get(suffix, suffix) if suffix else None


def resolve_output(file: str, output: str | None, fmt: str | None) -> tuple[str, Path | None]:
    """Decide the format and the output path (None means standard output)."""
    from_suffix = _suffix_format(output)
    if fmt is None:
        if output and output != "-" and from_suffix not in FORMATS:
            raise click.UsageError(f"cannot tell the format from {output!r}; add --format "
                                   f"({'|'.join(FORMATS)}) or use one of those suffixes")
        fmt = from_suffix or "png"
    elif from_suffix in FORMATS and from_suffix != fmt:
        raise click.UsageError(f"-o {output} ends in .{from_suffix} but --format is {fmt}; "
                               "make them agree")
    if output == "-":
        return fmt, None
    stem = "stdin" if file == "-" else Path(file).stem
    path = Path(output) if output else Path(f"{stem}.{fmt}")
    if file != "-":
        src = Path(file)
        try:
            same = path.exists() and src.exists() and path.samefile(src)
        except OSError:
            same = False
        if same or path.resolve() == src.resolve():
            raise click.UsageError(f"the output {path} is the input file; cgviz never overwrites "
                                   "its input (choose another -o)")
    return fmt, path


def _emit(data: bytes, path: Path | None) -> None:
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomic(path, data)


@main.command()
@click.argument("file", metavar="FILE")
@click.option("-o", "--output", metavar="OUT",
              help="Output file; its suffix picks the format. '-' writes to standard output. "
                   "Default: <stem>.<format> in the current folder.")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), help="png (default), svg, pdf, dot or json.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Replace a declaration's value, e.g. --set w=0.1 or --set 'x=[1, 2]'. Repeatable.")
@click.option("--no-grad", is_flag=True, help="Forward graph only: no backward pass, no red edges.")
@click.option("--rankdir", type=click.Choice(["LR", "TB"], case_sensitive=False), default="LR",
              show_default=True, help="Layout direction: left to right, or top to bottom.")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True, metavar="SECONDS",
              help="Give up on Graphviz's layout after this long.")
@click.option("--max-elements", type=click.IntRange(min=1), default=None, metavar="N",
              help="Refuse tensors with more elements than this, before allocating them "
                   "[default: 50,000,000, about 400 MB].")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def render(file, output, fmt, sets, no_grad, rankdir, timeout, max_elements, quiet):
    """Draw the computation graph of an expression FILE ('-' reads standard input).

    Runs the forward pass and, unless --no-grad, the backward pass, then draws every value on a
    blue edge and every gradient on a red edge.

    \b
    Examples:
        cgviz render sample_graphs/pizza.cg
        cgviz render sample_graphs/pizza.cg -o out/pizza.svg --set w=0.1
        cgviz render sample_graphs/three_layer.cg --format json -o -
    """
    from .dot import DotOptions, headline
    from .pipeline import evaluate, output_bytes, read_source

    overrides = _parse_sets(sets)
    fmt, path = resolve_output(file, output, fmt)
    text, name = read_source(file)
    result = evaluate(text, name, overrides, grad=not no_grad, max_elements=max_elements)
    data = output_bytes(result, fmt, DotOptions(rankdir=rankdir.upper(), grad=not no_grad), timeout=timeout)
    for w in result.run.warnings:
        click.echo(f"warning: {name}: {w}", err=True)
    _emit(data, path)
    if not quiet and path is not None:
        click.echo(f"wrote {path} ({len(result.graph)} nodes; {headline(result.graph, result.run)})", err=True)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "md"]), default="text", show_default=True)
def ops(fmt):
    """List the functions and operators the expression language knows, with their formulas.

    \b
    Example:
        cgviz ops
    """
    from .inits import INITS
    from .ops import OPS

    rows = [(d.usage, d.formula, ", ".join(d.local)) for d in OPS.values() if not d.internal]
    if fmt == "md":
        click.echo("| write | computes | local gradient(s) |\n|---|---|---|")
        for r in rows:
            click.echo("| `" + r[0] + "` | " + r[1].replace("|", "\\|") + " | " + r[2].replace("|", "\\|") + " |")
        click.echo("\n| initializer | gives |\n|---|---|")
        for d in INITS.values():
            click.echo(f"| `{d.signature}` | {d.doc} |")
        return
    width = max(len(r[0]) for r in rows)
    for how, formula, local in rows:
        click.echo(f"{how:<{width}}  {formula}    ∂: {local}")
    click.echo("\ninitializers (for input/param/const):")
    for d in INITS.values():
        click.echo(f"  {d.signature}: {d.doc}")
