"""The `cgviz` command line: thin click commands over the library; library errors become clean messages."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path


def _one_blas_thread() -> None:
    """Import NumPy with its OpenBLAS on one thread, unless the user chose a thread count.

    NumPy's wheels bring OpenBLAS, which starts a worker thread per core when NumPy is imported;
    the workers spin, waiting for work, for a while before they sleep, and are shut down at exit.
    OpenBLAS splits only large products between threads, and an expression file's arrays are small,
    so for a short command the workers mostly take CPU away: ~30 ms CPU of a `cgviz render` of
    pizza.cg on a 2-core machine, and wall time when the machine is busy (strace showed the exit
    waiting ~150 ms for the worker). OpenBLAS reads the variable once, as NumPy loads it; it is taken
    out of the environment again so that neither Graphviz nor torch (cgviz torch) sees it."""
    if "numpy" in sys.modules or any(os.environ.get(v) for v in
                                     ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")):
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


_one_blas_thread()

import click  # noqa: E402

from . import __version__  # noqa: E402
from .api.checks import check_step, check_thresholds  # noqa: E402
from .core.errors import CgvizError, OptionError  # noqa: E402
from .api.options import AUTO_RANKDIR_HELP, option, parse_sets  # noqa: E402
from .view import formats  # noqa: E402
from .view.graphviz import started_early, write_atomic  # noqa: E402

# Exit statuses (documented in docs/errors.md): 0 ok, 1 a mistake in the input or the environment,
# 2 a usage mistake (bad option), 3 an internal error (a bug in cgviz: please report it).
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143     # 128 + SIGTERM: what a CI runner's timeout sends


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs: Graphviz is killed, no partial file stays."""


def _on_sigterm(signum, frame):
    e = Terminated()
    e.signum = signum
    raise e


class _Group(click.Group):
    """Turns anything unexpected into a one-line internal-error message instead of a traceback."""

    def invoke(self, ctx):
        from .core.pywarnings import captured
        from .core.spelling import command_line
        try:
            # Python warnings (NumPy's overflow, torch's loader notes) never print their file paths:
            # the meaningful ones become `warning:` lines, the rest are dropped (cgviz.core.pywarnings).
            # Library messages name options as flags while a command runs (cgviz.core.spelling).
            with captured(lambda line: click.echo(line, err=True)), command_line():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except CgvizError as e:
            raise _user_error(e) from None
        except KeyboardInterrupt as e:
            _interrupted(ctx, e)
        except BrokenPipeError:
            # `cgviz ops | head`: the reader has all it wanted. Point stdout at /dev/null so the
            # interpreter's final flush does not complain, and finish quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as e:
            if e.errno not in _WRITE_ERRORS:
                raise _internal(ctx, e) from None
            # Every file cgviz writes goes through write_atomic, which says which file; an OSError
            # like this one comes from a standard stream (`cgviz explain x.cg > /dev/full`)
            _quiet_stdout()
            click.echo(f"cgviz: cannot write to standard output: {e.strerror or e}", err=True)
            ctx.exit(1)
        except Exception as e:  # a bug, not a user mistake
            interrupt = _interrupt_behind(e)
            if interrupt is not None:
                _interrupted(ctx, interrupt)
            _internal(ctx, e)


def _interrupted(ctx, e: KeyboardInterrupt) -> None:
    """Exit 128 + SIGINT (or SIGTERM), as shells report it, so CI can tell an interruption from a bad
    input; write_atomic has already removed its temporary file, and no output was replaced."""
    terminated = isinstance(e, Terminated)
    click.echo(f"cgviz: {'terminated' if terminated else 'interrupted'}; no output was written", err=True)
    ctx.exit(128 + getattr(e, "signum", 15) if terminated else EXIT_INTERRUPTED)


def _interrupt_behind(e: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) that an exception wraps: Python turns one that lands while a class is
    being created (a dataclass field's __set_name__, as a lazily imported module loads) into a
    RuntimeError caused by it."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


# errno values of a write that failed for lack of room or a broken device, not for a bug
_WRITE_ERRORS = {getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EIO")
                 if hasattr(errno, name)}


def _quiet_stdout() -> None:
    """Drop what standard output still holds and point it at /dev/null: the exit's flush would fail
    the same way again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _internal(ctx, e: Exception):
    if os.environ.get("CGVIZ_DEBUG"):
        raise e
    click.echo(f"cgviz: internal error: {type(e).__name__}: {e}\n"
               "This is a bug in cgviz; run again with CGVIZ_DEBUG=1 to see the traceback "
               "and please report it.", err=True)
    ctx.exit(EXIT_INTERNAL)


class _Command(click.Command):
    """A library OptionError (options that do not fit together or the source) is a usage mistake:
    shown with this command's usage line and exit status 2, as click shows its own."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OptionError as e:
            raise click.UsageError(str(e), ctx) from None


_Group.command_class = _Command


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


def run() -> None:
    """The console entry point: `main`, then a quick exit.

    Python's shutdown tears down every module and object one by one: ~0.4 s after a model run with
    torch loaded (a tenth of `cgviz torch` on ResNet-50), ~15-25 ms after a `cgviz render` of an
    expression file (NumPy, click and cgviz's modules: a tenth of the command). By then every output
    is written and closed (write_atomic), so once both standard streams are flushed the process
    leaves with os._exit. Without torch the atexit handlers still run first (logging's, say); after a
    model run they are skipped, as torch's own take long. If another thread is still running, the
    usual shutdown waits for it instead. `main` itself is unchanged (tests call it in-process)."""
    import signal
    try:
        # By default SIGTERM kills Python on the spot, leaving `dot` running and a temporary file behind;
        # so does SIGHUP, which a closed terminal or ssh session sends (exit status 129)
        signal.signal(signal.SIGTERM, _on_sigterm)
        if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:    # not under nohup
            signal.signal(signal.SIGHUP, _on_sigterm)
    except ValueError:      # not the main thread (cgviz run from a thread): keep the default
        pass
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    if code is None or isinstance(code, int):
        torch = "torch" in sys.modules
        threading = sys.modules.get("threading")
        if torch or threading is None or threading.active_count() == 1:
            if not torch:
                run_exit_handlers = getattr(__import__("atexit"), "_run_exitfuncs", None)
                if run_exit_handlers is None:
                    raise SystemExit(code)
                run_exit_handlers()
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                pass
            except OSError as e:          # what was left of the output was lost: not a success
                with contextlib.suppress(OSError):
                    sys.stderr.write(f"cgviz: cannot write to standard output: {e.strerror or e}\n")
                code = code or 1
            with contextlib.suppress(OSError):
                sys.stderr.flush()
            os._exit(code or 0)
    raise SystemExit(code)


def health_options(f):
    """--vanish and --explode: the gradient-health thresholds (cgviz.diagnose.health), for render, torch and grads."""
    return option("vanish")(option("explode")(f))


def _suffix_format(output: str | None) -> str | None:
    """The format -o's suffix names (the registry's, cgviz.view.formats), else None."""
    return formats.from_path(output)


class _FormatChoice(click.Choice):
    """--format's choices, read from the registry each time (a format added there is accepted here)."""

    def __init__(self, source: str):
        super().__init__((), case_sensitive=True)
        self.source = source

    @property
    def choices(self):
        return formats.names(self.source)

    @choices.setter
    def choices(self, value):          # click.Choice.__init__ sets it; the registry is the list
        pass


def resolve_output(file: str, output: str | None, fmt: str | None) -> tuple[str, Path | None]:
    """Decide the format and the output path (None means standard output)."""
    from_suffix = _suffix_format(output)
    if fmt is None:
        if output and output != "-" and from_suffix is None:
            raise click.UsageError(f"cannot tell the format from {output!r}; add --format "
                                   f"({'|'.join(formats.names())}) or use one of those suffixes")
        fmt = from_suffix or formats.DEFAULTS[formats.EXPRESSION]
    elif from_suffix is not None and from_suffix != fmt:
        raise click.UsageError(f"-o {output} ends in .{from_suffix} but --format is {fmt}; "
                               "make them agree")
    if output == "-":
        return fmt, None
    stem = "stdin" if file == "-" else Path(file).stem
    return fmt, Path(output) if output else Path(stem + formats.suffix(fmt))


def _check_files(inputs: list, outputs: list) -> None:
    """Before any work: no output may be an input or another output (a usage mistake, exit 2), and
    each output must be writable (exit 1). Every command passes all its files (cgviz.core.paths.Arg)."""
    from .core.paths import PathConflict, check_paths
    try:
        check_paths(inputs, outputs)
    except PathConflict as e:
        raise click.UsageError(str(e)) from None


def _out(option: str, path, given) -> "object":
    """An output for _check_files; a default path is said to be one."""
    from .core.paths import Arg
    return Arg(option, path, "" if given else " (the default)")


def _target_inputs(target: str, input_file: str | None = None, weights: str | None = None) -> list:
    """The files a FILE or MODEL argument reads, for _check_files (--targets too, where given)."""
    from .api.sources import files_read
    return files_read(target, input_file, weights, _stashed("targets"))


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
@click.option("-f", "--format", "fmt", type=_FormatChoice(None), help=formats.cli_help())
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Replace a declaration's value, e.g. --set w=0.1 or --set 'x=[1, 2]'. Repeatable.")
@option("no_grad")
@option("rankdir", default=None, help=AUTO_RANKDIR_HELP)
@option("timeout")
@option("dpi")
@option("max_elements")
@option("lr", help="Show each param's value after one step of gradient descent (w: 0.5 → -3.5), and warn "
                   "when a step is large for the param's size.")
@option("clip_norm", help="With --lr: clip the params' gradients to global norm C first (as clip_grad_norm_).")
@health_options
@option("no_fold", help="Draw a loop's steps one by one instead of its body once in a time_step=T frame.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and warnings.")
@click.option("--steps", is_flag=True,
              help="The backward pass as slides, one step per page of -o lesson.pdf or frame of -o lesson.gif, "
                   "in the HTML page's stepper order, each with its chain-rule line.")
def render(file, output, fmt, sets, no_grad, rankdir, timeout, dpi, max_elements, lr, clip_norm, vanish, explode,
           no_fold, quiet, steps):
    """Draw the computation graph of an expression FILE ('-' reads standard input).

    Runs the forward pass and, unless --no-grad, the backward pass, then draws every value on a
    blue edge and every gradient on a red edge, its width and shade by the gradient's log-magnitude.
    Params and inputs whose gradient vanishes or explodes (--vanish, --explode) are flagged with a ⚠
    and listed in a warning; sigmoid and tanh nodes show how much of their input is saturated.

    A training record FILE.cgw (cgviz.watch) is drawn as its page (html, the default: the model's
    graph with a step slider, a layers × steps heatmap, the loss, histograms, events and diagnosis)
    or as one picture (png, svg, pdf: the heatmap, the loss and the events).

    \b
    Examples:
        cgviz render sample_graphs/pizza.cg
        cgviz render sample_graphs/pizza.cg -o out/pizza.svg --set w=0.1
        cgviz render sample_graphs/three_layer.cg --format json -o -
        cgviz render sample_graphs/pizza.cg --lr 0.001      # one gradient-descent step
        cgviz render sample_graphs/deep_sigmoid.cg --vanish 1e-4
        cgviz render run.cgw -o run.html                  # a recorded training run
        cgviz render sample_graphs/pizza.cg --steps -o lesson.pdf   # slides, a step a page
    """
    from .api.drawer import draw

    if file.lower().endswith(".cgw"):       # a recorded training run (cgviz.watch): its page or picture
        return _render_run(file, output, fmt, timeout, dpi, quiet)
    overrides = parse_sets(sets)
    check_thresholds(vanish, explode)
    if steps:
        return _render_steps(file, output, fmt, overrides, no_grad, rankdir, dpi, timeout, quiet,
                             dict(lr=lr, clip_norm=clip_norm, vanish=vanish, explode=explode, max_elements=max_elements))
    check_step(lr, clip_norm, not no_grad)
    fmt, path = resolve_output(file, output, fmt)
    _check_files(_target_inputs(file), [_out("-o", path, output)])
    with started_early(fmt):
        d = draw(file, kind="expression", sets=overrides, grad=not no_grad, lr=lr, clip_norm=clip_norm,
                 rankdir=rankdir, vanish=vanish, explode=explode, max_elements=max_elements, timeout=timeout,
                 fold=not no_fold)
        data = d.output(fmt, dpi=dpi)
    for w in d.warnings:
        click.echo(f"warning: {d.source}: {w}", err=True)
    _emit(data, path)
    if not quiet and path is not None:
        click.echo(f"wrote {path} ({len(d)} nodes; {d.headline})", err=True)


def _render_run(file, output, fmt, timeout, dpi, quiet):
    """`cgviz render run.cgw`: the page (html, the default) or the picture (png, svg, pdf) of a recorded run."""
    from .view.watch_page import render_run
    fmt = fmt or _suffix_format(output) or formats.DEFAULTS[formats.RUN]
    if fmt not in formats.names(formats.RUN):
        raise click.UsageError(f"a recorded run (.cgw) is drawn as {formats.written(formats.RUN)}, not {fmt}")
    path = None if output == "-" else Path(output) if output else Path(Path(file).stem + formats.suffix(fmt))
    from .core.paths import Arg
    _check_files([Arg("the input", Path(file))], [_out("-o", path, output)])
    data, summary = render_run(file, fmt, timeout=timeout, dpi=dpi)
    _emit(data, path)
    if not quiet and path is not None:
        click.echo(f"wrote {path} ({summary})", err=True)


def _render_steps(file, output, fmt, overrides, no_grad, rankdir, dpi, timeout, quiet, options) -> None:
    """`render --steps`: the backward pass as a PDF or GIF of slides (cgviz.api.backward_slides)."""
    from .api.calls import backward_slides
    suffix = Path(output).suffix.lower().lstrip(".") if output and output != "-" else None
    kind = suffix if suffix in ("pdf", "gif") else fmt
    if kind not in ("pdf", "gif") or (fmt and suffix and fmt != suffix) or not output or output == "-":
        raise click.UsageError("--steps writes slides to a file: -o lesson.pdf (a page per step) or "
                               "-o lesson.gif (a frame per step)")
    if no_grad:
        raise click.UsageError("--steps shows the backward pass; drop --no-grad")
    path = Path(output)
    _check_files(_target_inputs(file), [_out("-o", path, output)])
    shown = backward_slides(file, format=kind, sets=overrides, rankdir=rankdir, dpi=dpi, timeout=timeout, **options)
    for w in shown.warnings:
        click.echo(f"warning: {file}: {w}", err=True)
    _emit(shown.data, path)
    if not quiet:
        for line in shown.lines:
            click.echo(line, err=True)
        n = len(shown.lines)
        click.echo(f"wrote {path} ({n} step{'s' * (n != 1)} of the backward pass, a "
                   f"{'page' if kind == 'pdf' else 'frame'} each)", err=True)


@main.command()
@click.argument("file", metavar="FILE")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "md", "json"]), default="text", show_default=True,
              help="text: aligned columns; md: a Markdown table; json: the same facts for programs.")
@click.option("-o", "--output", metavar="OUT", help="Write to this file instead of standard output.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Replace a declaration's value, e.g. --set w=0.1. Repeatable.")
def explain(file, fmt, output, sets):
    """Spell out backpropagation for an expression FILE: every node's local gradient as a formula
    and a number, then each param's and input's chain of local gradients multiplied out.

    \b
    Examples:
        cgviz explain sample_graphs/pizza.cg
        cgviz explain sample_graphs/challenge.cg --format md -o challenge.md
    """
    from .api.calls import explain as explain_program

    overrides = parse_sets(sets)
    path = None if not output or output == "-" else Path(output)
    _check_files(_target_inputs(file), [_out("-o", path, True)])
    e = explain_program(file, kind="expression", format=fmt, sets=overrides)
    for w in e.warnings:
        click.echo(f"warning: {e.source}: {w}", err=True)
    _emit(e.text.encode("utf-8"), path)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "md"]), default="text", show_default=True)
def ops(fmt):
    """List the functions and operators the expression language knows, with their formulas.

    \b
    Example:
        cgviz ops
    """
    from .api.calls import op_table
    click.echo(op_table(fmt), nl=False)


def _input_shape(ctx, param, values):
    from .pytorch.inputs import parse_shape
    try:
        return tuple(parse_shape(v) for v in values)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _do_imports(ctx, param, names):
    if names:
        from .pytorch.load import import_modules
        try:
            import_modules(names)
        except CgvizError as e:
            raise click.BadParameter(str(e).removeprefix(f"--import ")) from None
    return names


def _stash_max_elements(ctx, param, value):
    ctx.meta["cgviz.max_elements"] = value
    return value


def _stash_targets(ctx, param, value):
    ctx.meta["cgviz.targets"] = value
    return value


def _stash_dims(ctx, param, values):
    """--dim NAME=SIZE, as many as given: {name: size}."""
    dims = {}
    for v in values:
        name, eq, size = v.partition("=")
        if not eq or not name or not size.strip().isdigit() or int(size) < 1:
            raise click.BadParameter(f"{v!r}: give NAME=SIZE with a whole size of at least 1, e.g. batch=2")
        dims[name.strip()] = int(size)
    ctx.meta["cgviz.dims"] = dims
    return dims


def _allow_download(ctx, param, value):
    """--download: hf: models may be fetched from the Hub while this command runs (the library's
    `downloads` block, left when the command ends)."""
    if value:
        from .pytorch.hf_source import downloads
        ctx.with_resource(downloads(True))
    return value


def _stashed(key: str):
    """A model option that `model_options` keeps out of the command functions' parameters."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(f"cgviz.{key}") if ctx is not None else None


def model_options(f):
    """The options that say how a model runs, shared by every command that takes a MODEL
    (torch, check, grads): inputs, dtype, loss, seed, mode, and how the file may be loaded."""
    opts = [
        click.option("--input-shape", "input_shapes", multiple=True, callback=_input_shape, metavar="DIMS[:DTYPE]",
                     help="A random input of this shape, once per forward argument: 1,3,32,32 or 1,64:long "
                          "(token ids, drawn within the model's embedding range)."),
        option("input"),
        option("dtype"),
        option("loss"),
        # like --max-elements below: read from the context, so every command taking a MODEL has it
        option("targets", expose_value=False, callback=_stash_targets),
        option("seed"),
        option("trust"),
        option("download", expose_value=False, callback=_allow_download),     # hf: models
        option("weights"),
        # imported right here, as the option is read: before any model file is loaded
        option("imports", expose_value=False, callback=_do_imports),
        option("mode"),
        # Not passed to the command function (expose_value=False): trace_options reads it from the
        # context, so every command taking a MODEL gets it without a new parameter.
        option("max_elements", expose_value=False, callback=_stash_max_elements,
                     help="Refuse an --input-shape input with more elements than this, before allocating "
                          "it [default: 50,000,000]."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def trace_options(input_shapes, input_file, dtype, loss, seed, mode, view: str = "ops", meta: bool = False):
    """The library's TraceOptions from the values of `model_options` (mode: True train, False eval, None
    as saved), made by the library's one builder (cgviz.api.drawer._trace_options) from draw()'s keywords."""
    from .api.drawer import _trace_options
    checked = dict(dtype=dtype, loss=loss, seed=seed, view=view,
                   mode=None if mode is None else ("train" if mode else "eval"),
                   max_elements=_stashed("max_elements"), targets=_stashed("targets"), dims=_stashed("dims"))
    return _trace_options(False, input_shapes or None, checked, meta, input_file)


def _model_kwargs(input_shapes, input_file, dtype, loss, seed, trust, weights, mode) -> dict:
    """The values of `model_options` as the API's keywords (cgviz.api.draw and its siblings)."""
    return dict(input_size=input_shapes or None, input_file=input_file, dtype=dtype, loss=loss, seed=seed,
                trust=trust, weights=weights, mode=None if mode is None else ("train" if mode else "eval"),
                max_elements=_stashed("max_elements"), targets=_stashed("targets"))


def model_stem(model: str) -> str:
    """The file part of MODEL (`gpt.py:build` → `gpt.py`), for naming outputs."""
    from .core.paths import hub_name, is_hub, split_spec
    if is_hub(model):           # hf:meta-llama/Llama-3.2-1B → Llama-3.2-1B.png (whose .stem keeps the ".2-1B")
        return hub_name(model) + ".hf"
    return str(split_spec(model)[0])


@main.command()
@click.argument("file", metavar="FILE")
@option("lr", required=True)
@option("steps")
@option("clip_norm", help="Clip the params' gradients to global norm C before each step (as clip_grad_norm_).")
@click.option("-o", "--output", metavar="OUT",
              help="The final graph (suffix picks the format), or a .cgw training record "
                   "[default: <stem>_trained.png; a model: <stem>.cgw].")
@click.option("--curve", metavar="PNG", help="The loss-curve plot [default: <stem>_loss.png, beside -o's file].")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Replace a declaration's value before training, e.g. --set w=0.1. Repeatable.")
@option("rankdir", default=None, help=AUTO_RANKDIR_HELP)
@option("timeout")
@click.option("--every", type=click.IntRange(1), default=10, show_default=True, metavar="N",
              help="Into a .cgw record, one step in N (and the last).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True,
              help="A model's optimizer (torch.optim.SGD or Adam, at --lr).")
@model_options
@click.option("-q", "--quiet", is_flag=True, help="No per-step lines and no progress bar; errors and warnings only.")
def train(file, lr, steps, clip_norm, output, curve, sets, rankdir, timeout, every, optimizer, input_shapes,
          input_file, dtype, loss, seed, trust, weights, mode, quiet):
    """Train the params of an expression FILE by gradient descent: print the loss at each step,
    write a loss-curve plot (log scale when the loss spans decades) and the graph after the last step.
    With -o run.cgw, write the training record that cgviz.watch writes instead (docs/watch.md).

    FILE may also be a model file (.py, or model.py:factory, as cgviz torch takes it): then --steps
    optimizer steps (--optimizer sgd|adam at --lr) on its example inputs with --loss and --targets,
    recorded into -o run.cgw: the "can it overfit one batch?" check.

    Stops with exit status 1 when the loss becomes NaN or infinite (the steps diverged), after
    writing the curve and the graph (or the record) so far.

    \b
    Examples:
        cgviz train sample_graphs/pizza.cg --lr 1e-5 --steps 50
        cgviz train sample_graphs/three_layer.cg --lr 0.5 --steps 200 --clip-norm 1 --curve loss.png
        cgviz train sample_graphs/three_layer.cg --lr 0.5 --steps 200 -o three_layer.cgw
        cgviz train net.py --loss ce --targets labels.pt --optimizer adam --lr 1e-3 --steps 200 -o net.cgw
    """
    from .api.calls import train as train_program
    from .api.sources import is_model
    from .core.fmt import num

    model_given = {"--input-shape": input_shapes, "--input": input_file, "--dtype": dtype, "--loss": loss,
                   "--targets": _stashed("targets"), "--trust": trust, "--weights": weights,
                   "--train/--eval": mode is not None}
    if file != "-" and is_model(file):
        ctx = click.get_current_context()
        dsl = [f"--{n.replace('_', '-')}" for n in ("sets", "curve", "clip_norm", "rankdir", "timeout")
               if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
        if dsl:
            raise click.UsageError(f"{', '.join(dsl).replace('--sets', '--set')} go{'es' if len(dsl) == 1 else ''} "
                                   f"with an expression file; {file} is a model")
        _train_model(file, lr, steps, every, optimizer, output, input_shapes, input_file, dtype, loss, seed,
                     trust, weights, mode, quiet)
        return
    given = [k for k, v in model_given.items() if v]
    if given:
        raise click.UsageError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with a model file; "
                               f"{file} is an expression file")
    overrides = parse_sets(sets)
    stem = "stdin" if file == "-" else Path(file).stem
    if output and output.lower().endswith(".cgw"):
        fmt, path = "cgw", Path(output)
    else:
        fmt, path = resolve_output(file, output or f"{stem}_trained.png", None)
    # beside the graph or the record when -o names one elsewhere, not in whatever folder the shell is in
    beside = path.parent if output and path is not None else Path()
    curve_path = _png_path("--curve", curve, str(beside / f"{stem}_loss.png"))
    _check_files(_target_inputs(file), [_out("-o", path, output), _out("--curve", curve_path, curve)])
    width = len(str(steps))
    show = not quiet
    bar_ctx = click.progressbar(length=steps, label="training", file=sys.stderr,
                                show_pos=True) if show and sys.stderr.isatty() else None

    def on_step(k, loss, s):
        if show:
            clip = f"  clipped ×{num(s.scale)}" if s is not None and s.clipped else ""
            gn = f"  ‖∂L/∂θ‖ {num(s.grad_norm)}" if s is not None else ""
            click.echo(f"step {k + 1:>{width}}/{steps}  loss {num(loss)}{gn}{clip}")
            if bar_ctx is not None and s is not None:
                bar_ctx.update(1)

    with bar_ctx or contextlib.nullcontext():
        t = train_program(file, kind="expression", lr=lr, steps=steps, clip_norm=clip_norm, sets=overrides,
                          format=fmt, rankdir=rankdir, timeout=timeout, on_step=on_step, every=every)
    for w in t.warnings:
        click.echo(f"warning: {t.source}: {w}", err=True)
    write_atomic(curve_path, t.curve)
    _emit(t.graph, path)
    if t.stopped:
        raise CgvizError(f"{t.source}: {t.stopped}. Wrote the loss curve to {curve_path} and the graph at "
                         f"that point to {path}.")
    for w in t.advice:
        click.echo(f"warning: {t.source}: {w}", err=True)
    if show:
        click.echo(f"loss {num(t.losses[0])} → {num(t.losses[-1])} in {t.done} steps; wrote {path} and {curve_path}",
                   err=True)


def _train_model(file, lr, steps, every, optimizer, output, input_shapes, input_file, dtype, loss, seed, trust,
                 weights, mode, quiet):
    """`cgviz train MODEL`: optimizer steps on the model's example inputs, recorded into a .cgw file."""
    from .core.fmt import num
    from .pytorch.load import check_model_files
    from .watch.fit import train_model

    path = Path(output or f"{Path(model_stem(file)).stem}.cgw")
    if path.suffix.lower() != ".cgw":
        raise click.UsageError(f"-o {path}: training a model writes a .cgw record (docs/watch.md); "
                               "name it run.cgw")
    _check_files(_target_inputs(file, input_file, weights), [_out("-o", path, output)])
    check_model_files(file, input_file, weights)
    opts = trace_options(input_shapes, input_file, dtype, loss, seed, mode)
    width = len(str(steps))

    def on_step(k, value):
        if not quiet:
            click.echo(f"step {k + 1:>{width}}/{steps}  loss {num(value)}")

    f = train_model(file, opts, lr=lr, steps=steps, every=every, optimizer=optimizer, output=path, trust=trust,
                    weights=weights, on_step=on_step)
    for note in () if quiet else f.notes:
        click.echo(f"note: {note}", err=True)
    if f.stopped:
        raise CgvizError(f"{f.source}: {f.stopped}. Wrote the record so far to {path}.")
    for line in f.diagnosis:
        click.echo(f"warning: {f.source}: {line}", err=True)
    if not quiet:
        click.echo(f"loss {num(f.losses[0])} → {num(f.losses[-1])} in {f.done} steps; wrote {path}", err=True)


@main.command("torch")
@click.argument("model", metavar="MODEL")
@click.option("-o", "--output", metavar="OUT",
              help="Output file; its suffix picks the format. '-' writes to standard output.")
@click.option("-f", "--format", "fmt", type=_FormatChoice(formats.MODEL), help=formats.cli_help())
@model_options
@option("view")
@option("depth")
@option("focus")
@option("no_fold")
@option("no_simplify")
@option("meta")
@option("no_grad", help="Leave the red gradient edges out of the picture.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE", expose_value=False, callback=_stash_dims,
              help="The size of an ONNX graph's symbolic dimension, by its name: --dim batch=2.")
@click.option("--profile", is_flag=True,
              help="Also time each op under torch.profiler (after a warm-up pass): forward and backward "
                   "CPU time and memory on every node, shaded by share of the time, and a table of the "
                   "top nodes (on stdout; on stderr when -o - writes the picture there).")
@option("profile_runs")
@option("profile_top")
@option("rankdir", default="TB")
@option("timeout")
@option("dpi")
@health_options
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and warnings.")
def torch_cmd(model, output, fmt, input_shapes, input_file, dtype, loss, seed, view, depth, focus, no_fold, no_simplify,
              trust, weights, meta, mode, no_grad, profile, profile_runs, profile_top, rankdir, timeout,
              dpi, vanish, explode, quiet):
    """Draw a PyTorch MODEL after one forward and backward pass: every tensor on a blue edge,
    every gradient on a red one, parameters by their qualified names, grouped by module.

    MODEL is a torch.export program (.pt2), a TorchScript archive, a Python file defining
    `model` (or model.py:factory), or, with --trust, a pickled nn.Module.

    \b
    Examples:
        cgviz torch model.pt2
        cgviz torch net.py --input-shape 8,3,32,32 -o net.svg
        cgviz torch gpt.py:build --input-shape 1,64:long --depth 2
        cgviz torch gpt.py:build --input-shape 1,64:long --focus blocks.3.attn -o attn.svg
        cgviz torch net.py --view autograd --format json -o -
        cgviz torch net.py --profile --profile-runs 5 --top 20 -o net.svg
    """
    import time

    from .api import draw
    from .view.modelexplorer import OVERLAYS, sibling

    if not profile and (profile_runs or profile_top):
        raise click.UsageError("--profile-runs and --top go with --profile")
    if profile and view == "autograd":
        raise click.UsageError("--profile attributes time to the ops the model ran; it cannot be "
                               "combined with --view autograd")
    if profile and meta:
        raise click.UsageError("--profile needs a real forward and backward pass; it cannot be combined with --meta")
    check_thresholds(vanish, explode)
    fmt, path = resolve_output(model_stem(model), output, fmt)
    beside = [_out("-o", sibling(path, name), output) for name in OVERLAYS] if fmt == "modelexplorer" and path else []
    _check_files(_target_inputs(model, input_file, weights), [_out("-o", path, output), *beside])
    t0 = time.perf_counter()
    # the library's one call, told the format so that it draws for it (a PNG's level, a page's histograms)
    d = draw(model, kind="model", format=fmt, view=view, meta=meta, depth=depth, fold=not no_fold,
             simplify=not no_simplify, focus=focus, grad=not no_grad, rankdir=rankdir.upper(), timeout=timeout,
             vanish=vanish, explode=explode, profile=profile, profile_runs=profile_runs, profile_top=profile_top,
             dims=_stashed("dims"), **_model_kwargs(input_shapes, input_file, dtype, loss, seed, trust, weights, mode))
    data = d.output(fmt, dpi=dpi)
    for note in () if quiet else d.notes:
        click.echo(f"note: {note}", err=True)
    for w in d.warnings:
        click.echo(f"warning: {w}", err=True)
    if d.depth_note and not quiet:
        click.echo(f"note: {d.depth_note}", err=True)
    _emit(data, path)
    written = d.beside(fmt) if path is not None else {}
    for name, side in written.items():
        _emit(side, sibling(path, name))        # Model Explorer's node-data overlays
    if d.profile and not quiet:
        # the picture on stdout (-o -) keeps stdout to itself
        click.echo(d.profile, nl=False, err=path is None)
    if os.environ.get("CGVIZ_TIMINGS"):
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in d.timings.items())
        click.echo(f"timings: {parts}, total {time.perf_counter() - t0:.2f} s", err=True)
    if not quiet and path is not None:
        loss_text = f"; loss = {d.loss:.4g}" if d.loss is not None else ""
        click.echo(f"wrote {path} ({d.nodes(fmt)} nodes{loss_text})", err=True)
        if written:
            names = ", ".join(sibling(path, name).name for name in written)
            click.echo(f"wrote Model Explorer's node-data overlays beside it: {names}", err=True)


@main.command()
@click.argument("inputs", nargs=-1, metavar="[MANIFEST | FILES...]")
@click.option("--golden", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Folder of goldens: <entry>.json (the graph) and <entry>.png (the picture).")
@click.option("--update", is_flag=True, help="Write new goldens for the entries that changed or are new, and "
              "move old DOT/PNG goldens to the graph golden.")
@click.option("--out", "out_dir", default="snapshot-out", show_default=True, metavar="DIR",
              help="Where the new JSON/PNG and <entry>.diff.png of a changed entry go.")
@option("rtol", default=None, show_default=False,
        # the defaults are cgviz.view.golden's (a test holds them equal); written here, so that every
        # command's start-up does not import that module for two help lines
        help="Relative tolerance of the graph's numbers, against the tensor's scale [default: 0.0001].")
@option("atol", default=None, show_default=False,
        help="Absolute tolerance of the graph's numbers [default: 1e-12].")
@click.option("--pixels", is_flag=True, help="Compare the PNG pixel by pixel too (same Graphviz and fonts only).")
@option("tolerance", help="With --pixels: share of pixels that may differ before the PNG counts as changed.")
@option("threshold", help="With --pixels: a pixel differs when a colour channel moves by more than N (of 255).")
@option("jobs")
@option("timeout", help="Give up on one entry's Graphviz layout after this long.")
@click.option("--allow-trust", is_flag=True,
              help="Let manifest entries set trust = true (unpickling a module runs code from its file).")
@click.option("--allow-outside", is_flag=True,
              help="Let a manifest name files outside its own folder.")
def snapshot(inputs, golden, update, out_dir, rtol, atol, pixels, tolerance, threshold, jobs, timeout, allow_trust,
             allow_outside):
    """Hold graphs steady: draw every entry and compare its graph with its golden copy.

    Entries are .cg files, or a manifest (TOML, e.g. cgviz.toml) of [[entry]] tables with
    `file = "x.cg"` or `model = "net.py"` and the options render/torch take. The graph's
    structure (nodes, ops, edges, shapes, dtypes, modules, folds) must match exactly, its values
    and gradients within --rtol/--atol; what changed is listed node by node. With --pixels (or
    an entry's compare = ["graph", "png"]) the PNG must match pixel by pixel within --tolerance.
    Exit status 0 when all match, 1 when any changed or lacks a golden, 2 for a usage mistake.

    A manifest may name only files inside its own folder, and no entry may set trust = true,
    unless --allow-outside and --allow-trust say so: in CI a manifest comes from a pull request.

    \b
    Examples:
        cgviz snapshot sample_graphs/*.cg --golden tests/snapshots
        cgviz snapshot cgviz.toml --golden tests/snapshots -j 2
        cgviz snapshot cgviz.toml --golden tests/snapshots --update
    """
    from .snapshot.runner import run as run_snapshot

    out = Path(out_dir)
    snap = run_snapshot(list(inputs), Path(golden), out, update=update, pixels=pixels, rtol=rtol, atol=atol,
                        threshold=threshold, tolerance=tolerance, jobs=jobs, timeout=timeout,
                        allow_trust=allow_trust, allow_outside=allow_outside,
                        progress=lambda n: click.progressbar(length=n, label="rendering", file=sys.stderr,
                                                             show_pos=True))
    from .core.paths import shown
    width = max(len(shown(o.entry.name)) for o in snap.outcomes)
    click.echo(f"{'entry':<{width}}  {'status':<14}  detail")
    for o in snap.outcomes:
        click.echo(shown(f"{shown(o.entry.name):<{width}}  {o.status:<14}  {o.detail}".rstrip()))
    for o in snap.outcomes:
        if o.report and o.status == "changed":
            click.echo(f"\n{shown(o.entry.name)}:")
            click.echo("\n".join(f"  {line}" for line in o.report))
    for o in snap.outcomes:
        if o.picture:       # the graph diff picture (cgviz.diff), said apart from the report's lines
            click.echo(f"{shown(o.entry.name)}: " + "\n  ".join(o.picture), err=True)
    if snap.legacy and not update:
        click.echo(f"note: {', '.join(snap.legacy)} still have old DOT/PNG goldens, checked as exact DOT and "
                   "pixels; run with --update once to move them to graph goldens (<entry>.json)", err=True)
    if snap.orphans:
        click.echo(f"note: goldens in {Path(golden)} that no entry claims (renamed or removed?): "
                   f"{', '.join(snap.orphans)}", err=True)
    if snap.written:
        click.echo(f"wrote goldens for: {', '.join(snap.written)}", err=True)
    if snap.failed:
        raise _UserError(f"{len(snap.failed)} of {len(snap.outcomes)} entries differ from their goldens; new "
                         f"pictures and diffs are in {out}/. If the change is intended, run again with --update.")


@main.command()
@click.argument("target", metavar="FILE|MODEL")
@option("rtol")
@option("atol")
@option("fd_rtol")
@option("fd_atol")
@option("fd_samples")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Expression files: replace a declaration's value, e.g. --set w=0.1. Repeatable.")
@model_options
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: an aligned table and a summary line; json: the same for programs.")
def check(target, rtol, atol, fd_rtol, fd_atol, fd_samples, sets, input_shapes, input_file, dtype, loss, seed,
          trust, weights, mode, fmt):
    """Check the gradients cgviz shows for an expression FILE or a PyTorch MODEL: each param's and
    input's gradient against PyTorch autograd and against central finite differences.

    \b
    Per tensor it prints the largest absolute error and the largest relative error
    |a − b| / |b| against each; a tensor agrees when every element satisfies
    |a − b| ≤ atol + rtol·|b|. Forward values are compared with torch's too.
    Finite differences: (L(x+h) − L(x−h)) / 2h with h = 1e-6·max(1, |x|), in float64, at
    every element or a fixed sample of --fd-samples of them; they carry ~1e-10 of error,
    hence the looser --fd-rtol/--fd-atol. At a kink (ReLU or |x| at 0, a tie in max) the
    one-sided differences disagree; any gradient between them passes and is counted as a
    kink. A model in float32 is compared with a tolerance widened to its precision.
    Without PyTorch installed, an expression file is checked by finite differences only.
    Exit status 0 when everything agrees, 1 when anything disagrees (named in the output).

    \b
    Examples:
        cgviz check sample_graphs/pizza.cg
        cgviz check sample_graphs/residual.cg --fd-samples 8 --format json
        cgviz check net.py --input-shape 4,16 --eval
    """
    from .api.calls import check_gradients

    ctx = click.get_current_context()
    r = check_gradients(target, kind="file", rtol=rtol, atol=atol, fd_rtol=fd_rtol, fd_atol=fd_atol,
                        fd_samples=fd_samples, sets=parse_sets(sets), **_model_kwargs(input_shapes, input_file, dtype,
                                                                                      loss, seed, trust, weights, mode))
    for w in r.warnings:
        click.echo(f"warning: {r.report.source}: {w}", err=True)
    click.echo(r.json() if fmt == "json" else r.text(), nl=False)
    if not r.ok:
        ctx.exit(1)


def _png_path(option: str, given: str | None, default: str) -> Path:
    """A plot's path: must end in .png (_check_files keeps it off the inputs)."""
    path = Path(given or default)
    if path.suffix.lower() != ".png":
        raise click.UsageError(f"{option} writes a PNG; give a name ending in .png, not {path}")
    return path


@main.command()
@click.argument("target", metavar="FILE|MODEL")
@click.option("-o", "--output", metavar="PNG",
              help="The bar chart of gradient norms per layer [default: <stem>_grads.png].")
@click.option("--hist", metavar="PNG", help="Per-layer gradient histograms [default: <stem>_grad_hist.png, beside -o's file].")
@click.option("--no-plots", is_flag=True, help="Print the table only; write no PNG.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "md", "json"]), default="text", show_default=True,
              help="The table on standard output: aligned text, a Markdown table, or JSON.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Expression files: replace a declaration's value, e.g. --set w=0.1. Repeatable.")
@health_options
@model_options
@click.option("-q", "--quiet", is_flag=True, help="Print the table and errors only.")
def grads(target, output, hist, no_plots, fmt, sets, vanish, explode, input_shapes, input_file, dtype, loss, seed,
          trust, weights, mode, quiet):
    """Gradient health per layer of an expression FILE or a PyTorch MODEL after one backward pass:
    a table (param, shape, ‖w‖, ‖g‖, ‖g‖/‖w‖, flag), a bar chart of the gradient norms (log scale,
    coloured by flag, each bar's thresholds dashed) and a histogram of each layer's gradient.

    \b
    A layer is one tensor that gets a gradient: for FILE each float param and input; for MODEL
    each parameter tensor by its qualified name (as TensorBoard shows them). A param is flagged
    vanishing when ‖g‖/‖w‖ < --vanish and exploding when > --explode; an input, or a param
    whose ‖w‖ is 0 (a zero-initialised bias), is judged by ‖g‖ itself.

    \b
    Examples:
        cgviz grads sample_graphs/deep_sigmoid.cg
        cgviz grads sample_graphs/deep_relu.cg -o relu.png --hist relu_hist.png
        cgviz grads sample_graphs/models/res_cnn.py --format md --no-plots
    """
    from .api.calls import gradient_health

    check_thresholds(vanish, explode)
    stem = "stdin" if target == "-" else Path(model_stem(target)).stem
    bar_path = hist_path = None
    if not no_plots:
        bar_path = _png_path("-o", output, f"{stem}_grads.png")
        hist_path = _png_path("--hist", hist, str(bar_path.parent / f"{stem}_grad_hist.png"))   # beside -o
    elif output or hist:
        raise click.UsageError("--no-plots writes no PNG; leave out -o and --hist")
    _check_files(_target_inputs(target, input_file, weights), [_out("-o", bar_path, output),
                                                               _out("--hist", hist_path, hist)])
    h = gradient_health(target, kind="file", vanish=vanish, explode=explode, sets=parse_sets(sets),
                        **_model_kwargs(input_shapes, input_file, dtype, loss, seed, trust, weights, mode))
    for note in h.notes:
        click.echo(f"note: {note}", err=True)
    prefix = f"{h.source}: " if h.kind == "expression" else ""     # as render and torch say it
    for w in h.warnings:
        click.echo(f"warning: {prefix}{w}", err=True)
    click.echo(h.table(fmt), nl=False)
    if no_plots:
        return
    write_atomic(bar_path, h.bar_chart()[0])
    png, info = h.histograms()
    write_atomic(hist_path, png)
    if not quiet:
        click.echo(f"wrote {bar_path} ({len(h.rows)} bars) and {hist_path} ({info['panels']} panels)", err=True)


@main.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("-o", "--output", metavar="OUT", help="The picture (.png, .svg, .pdf), its DOT (.dot), the structured "
              "diff (.json) or A, the diff and B side by side (.html) [default: none, the summary only].")
@option("rtol", default=None, show_default=False,
        help="Relative tolerance of values and gradients, against the tensor's scale (the snapshot's) "
             "[default: 0.0001].")
@option("atol", default=None, show_default=False, help="Absolute tolerance (the snapshot's) [default: 1e-12].")
@click.option("--a", "a_opts", multiple=True, metavar="KEY=VALUE",
              help="An option for A only, as a snapshot manifest spells it (dtype=bfloat16, seed=1, "
                   "input_shape=1,4); for a program, NAME=VALUE sets a declaration. Repeatable.")
@click.option("--b", "b_opts", multiple=True, metavar="KEY=VALUE", help="The same for B.")
@click.option("--both", "both_opts", multiple=True, metavar="KEY=VALUE", help="The same for both sides.")
@option("rankdir", default="TB")
@option("timeout")
@click.option("--step", type=click.IntRange(min=0), default=None,
              help="Two training records (.cgw): the recorded step to compare them at [default: the last "
                   "step both recorded]. One record's two steps are named A and B: run.cgw@10 run.cgw@last.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit status says it.")
def diff(a, b, output, rtol, atol, a_opts, b_opts, both_opts, rankdir, timeout, step, quiet):
    """Compare two runs A and B: two programs, two model files, a file and a saved JSON graph (--format
    json, or a snapshot golden), two .pt2 files, or one file drawn with two option sets.

    \b
    Nodes are matched by name, then by structure (op, shape, place in forward order), so a renamed
    or inserted module lines the rest up. The summary counts nodes added, removed, changed (op,
    shape, dtype) and with numbers beyond --rtol/--atol, names the largest value and gradient
    changes and the first op, in forward order, whose values diverge. The picture is drawn on the
    union graph: unchanged grey, added green, removed purple, changed orange, and the edges carry
    ‖v‖ and ‖g‖ before → after. Exit status 0 when nothing differs beyond the tolerance, 1 when
    something does, 2 on an error.

    \b
    Examples:
        cgviz diff before.cg after.cg -o diff.png
        cgviz diff net.py:build net.py:build --both input_shape=4,16 --b dtype=bfloat16 --rtol 0.01
        cgviz diff run1.json run2.json -o diff.json
        cgviz diff run.cgw@10 run.cgw@last -o moved.png      # two steps of a training record
        cgviz diff mine.cgw theirs.cgw --step 500             # two records at one step
    """
    from .diff import compare
    from .api.sources import files_read
    from .diff.sides import parse_option
    fmt = None
    if output:
        fmt = formats.from_path(output)
        if fmt not in formats.names(formats.DIFF):
            raise click.UsageError(f"cannot tell the format from -o {output!r}: use "
                                   f"{formats.suffixes_text(formats.DIFF)}")
    from .diff.runs import record_spec
    from .core.paths import Arg
    records = [record_spec(x) for x in (a, b)]
    read = []
    for r, x in zip(records, (a, b)):       # a record's file is run.cgw of run.cgw@10
        read += [Arg("the input", r.path)] if r is not None else files_read(x)
    _check_files(read, [_out("-o", Path(output), True)] if output else [])
    try:
        opts = {}
        for which, items in (("A", a_opts), ("B", b_opts), ("both", both_opts)):
            opts[which] = dict(parse_option(item, which) for item in items)
        if step is not None:
            if not any(records):
                raise OptionError("--step chooses the step of training records (.cgw); A and B are not records")
            opts["both"]["step"] = step
        c = compare(a, b, rtol=rtol, atol=atol, a_options=opts["A"] or None, b_options=opts["B"] or None,
                    rankdir=rankdir, timeout=timeout, **opts["both"])
        if output:
            c.save(output, fmt)
    except OptionError as e:
        raise click.UsageError(str(e)) from None
    except CgvizError as e:
        err = _user_error(e)
        err.exit_code = 2           # 1 means "differs": a script must tell a failure from a difference
        raise err from None
    if not quiet:
        click.echo(c.text())
        if output:
            click.echo(f"wrote {output}", err=True)
    raise SystemExit(0 if c.same else 1)
