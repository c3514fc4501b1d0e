"""The `cgviz` command line: thin click commands over the library; library errors become clean messages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import CgvizError
from .options import AUTO_RANKDIR_HELP, option, parse_sets
from .view.graphviz import FORMATS, write_atomic

# Exit statuses (documented in the README): 0 ok, 1 a mistake in the input or the environment,
# 2 a usage mistake (bad option), 3 an internal error (a bug in cgviz: please report it).
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143     # 128 + SIGTERM: what a CI runner's timeout sends


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs: Graphviz is killed, no partial file stays."""


def _on_sigterm(signum, frame):
    raise Terminated()


class _Group(click.Group):
    """Turns anything unexpected into a one-line internal-error message instead of a traceback."""

    def invoke(self, ctx):
        from .pywarnings import captured
        try:
            # Python warnings (NumPy's overflow, torch's loader notes) never print their file paths:
            # the meaningful ones become `warning:` lines, the rest are dropped (cgviz.pywarnings)
            with captured(lambda line: click.echo(line, err=True)):
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except CgvizError as e:
            raise _user_error(e) from None
        except KeyboardInterrupt as e:
            # 128 + SIGINT (or SIGTERM), as shells report it, so CI can tell an interruption from a bad
            # input; write_atomic has already removed its temporary file, and no output was replaced.
            terminated = isinstance(e, Terminated)
            click.echo(f"cgviz: {'terminated' if terminated else 'interrupted'}; no output was written", err=True)
            ctx.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
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


def run() -> None:
    """The console entry point: `main`, then a quick exit once torch has been loaded.

    Python's shutdown after a model run spends ~0.4 s tearing down torch and the model's tensors
    (a tenth of `cgviz torch` on ResNet-50). By then every output is written and closed, so the
    process leaves with os._exit once both standard streams are flushed. `main` itself is unchanged
    (tests call it in-process)."""
    import signal
    try:
        # By default SIGTERM kills Python on the spot, leaving `dot` running and a temporary file behind.
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:      # not the main thread (cgviz run from a thread): keep the default
        pass
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    if "torch" in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, OSError):
            pass
        if code is None or isinstance(code, int):
            os._exit(code or 0)
    raise SystemExit(code)


def health_options(f):
    """--vanish and --explode: the gradient-health thresholds (cgviz.health), for render, torch and grads."""
    return option("vanish")(option("explode")(f))


def _check_thresholds(vanish: float, explode: float) -> None:
    if not vanish < explode:
        raise click.UsageError(f"--vanish ({vanish:g}) must be smaller than --explode ({explode:g})")


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
    return fmt, Path(output) if output else Path(f"{stem}.{fmt}")


def _check_files(inputs: list, outputs: list) -> None:
    """Before any work: no output may be an input or another output (a usage mistake, exit 2), and
    each output must be writable (exit 1). Every command passes all its files (cgviz.paths.Arg)."""
    from .paths import PathConflict, check_paths
    try:
        check_paths(inputs, outputs)
    except PathConflict as e:
        raise click.UsageError(str(e)) from None


def _out(option: str, path, given) -> "object":
    """An output for _check_files; a default path is said to be one."""
    from .paths import Arg
    return Arg(option, path, "" if given else " (the default)")


def _target_inputs(target: str, input_file: str | None = None, weights: str | None = None) -> list:
    """The files a FILE or MODEL argument reads: the file itself (`net.py` of `net.py:build`), --input
    and --weights."""
    from .pytorch.load import split_spec
    from .paths import Arg
    files = [] if target == "-" else [Arg("the input", split_spec(target)[0])]
    return files + [Arg("--input", input_file), Arg("--weights", weights)]


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
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), help="png (default), svg, pdf, dot, json, or html (an interactive page).")
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
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def render(file, output, fmt, sets, no_grad, rankdir, timeout, dpi, max_elements, lr, clip_norm, vanish, explode,
           quiet):
    """Draw the computation graph of an expression FILE ('-' reads standard input).

    Runs the forward pass and, unless --no-grad, the backward pass, then draws every value on a
    blue edge and every gradient on a red edge, its width and shade by the gradient's log-magnitude.
    Params and inputs whose gradient vanishes or explodes (--vanish, --explode) are flagged with a ⚠
    and listed in a warning; sigmoid and tanh nodes show how much of their input is saturated.

    \b
    Examples:
        cgviz render sample_graphs/pizza.cg
        cgviz render sample_graphs/pizza.cg -o out/pizza.svg --set w=0.1
        cgviz render sample_graphs/three_layer.cg --format json -o -
        cgviz render sample_graphs/pizza.cg --lr 0.001      # one gradient-descent step
        cgviz render sample_graphs/deep_sigmoid.cg --vanish 1e-4
    """
    from .view.dot import DotOptions, headline
    from .lang.pipeline import annotate, evaluate, output_bytes, read_source

    overrides = parse_sets(sets)
    _check_thresholds(vanish, explode)
    if lr is not None and no_grad:
        raise click.UsageError("--lr needs gradients; leave out --no-grad")
    if clip_norm is not None and lr is None:
        raise click.UsageError("--clip-norm clips the step --lr takes; give --lr too")
    fmt, path = resolve_output(file, output, fmt)
    _check_files(_target_inputs(file), [_out("-o", path, output)])
    text, name = read_source(file)
    result = evaluate(text, name, overrides, grad=not no_grad, max_elements=max_elements)
    warnings = annotate(result, not no_grad, lr, clip_norm, vanish, explode)
    data = output_bytes(result, fmt, DotOptions(rankdir=rankdir and rankdir.upper(), grad=not no_grad, vanish=vanish,
                                                explode=explode), timeout=timeout, dpi=dpi)
    for w in warnings:
        click.echo(f"warning: {name}: {w}", err=True)
    _emit(data, path)
    if not quiet and path is not None:
        click.echo(f"wrote {path} ({len(result.graph)} nodes; {headline(result.graph, result.run)})", err=True)


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
    from .lang.explain import FORMATS as EXPLAIN
    from .lang.pipeline import evaluate, read_source

    overrides = parse_sets(sets)
    path = None if not output or output == "-" else Path(output)
    _check_files(_target_inputs(file), [_out("-o", path, True)])
    text, name = read_source(file)
    result = evaluate(text, name, overrides)
    for w in result.run.warnings:
        click.echo(f"warning: {name}: {w}", err=True)
    _emit(EXPLAIN[fmt](result.graph, result.run).encode("utf-8"), path)


@main.command()
@click.argument("file", metavar="FILE")
@option("lr", required=True)
@option("steps")
@option("clip_norm", help="Clip the params' gradients to global norm C before each step (as clip_grad_norm_).")
@click.option("-o", "--output", metavar="OUT",
              help="The final graph (suffix picks the format) [default: <stem>_trained.png].")
@click.option("--curve", metavar="PNG", help="The loss-curve plot [default: <stem>_loss.png].")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Replace a declaration's value before training, e.g. --set w=0.1. Repeatable.")
@option("rankdir", default=None, help=AUTO_RANKDIR_HELP)
@option("timeout")
@click.option("-q", "--quiet", is_flag=True, help="No per-step lines and no progress bar; errors and warnings only.")
def train(file, lr, steps, clip_norm, output, curve, sets, rankdir, timeout, quiet):
    """Train the params of an expression FILE by gradient descent: print the loss at each step,
    write a loss-curve plot (log scale when the loss spans decades) and the graph after the last step.

    Stops with exit status 1 when the loss becomes NaN or infinite (the steps diverged), after
    writing the curve and the graph so far.

    \b
    Examples:
        cgviz train sample_graphs/pizza.cg --lr 1e-5 --steps 50
        cgviz train sample_graphs/three_layer.cg --lr 0.5 --steps 200 --clip-norm 1 --curve loss.png
    """
    from .view.dot import DotOptions
    from .errors import CgvizError
    from .fmt import num
    from .lang.pipeline import evaluate, output_bytes, read_source
    from .view.plots import loss_curve
    from .lang.train import frame_steps, params, train as run_training, training_warnings

    overrides = parse_sets(sets)
    stem = "stdin" if file == "-" else Path(file).stem
    fmt, path = resolve_output(file, output or f"{stem}_trained.png", None)
    curve_path = Path(curve or f"{stem}_loss.png")
    if _suffix_format(str(curve_path)) != "png":
        raise click.UsageError(f"--curve writes a PNG; give a name ending in .png, not {curve_path}")
    _check_files(_target_inputs(file), [_out("-o", path, output), _out("--curve", curve_path, curve)])
    text, name = read_source(file)
    result = evaluate(text, name, overrides)
    graph = result.graph
    if not params(graph):
        raise CgvizError(f"{name} declares no float param: there is nothing to train (declare weights with `param`)")
    for w in result.run.warnings:
        click.echo(f"warning: {name}: {w}", err=True)
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

    frames, keep = [], frame_steps(steps) if fmt == "html" else set()

    def on_run(k, r):       # the runs the page's step slider shows
        if k in keep:
            frames.append((k, r))

    if bar_ctx is not None:
        with bar_ctx:
            run, hist = run_training(graph, lr, steps, clip_norm, on_step, on_run)
    else:
        run, hist = run_training(graph, lr, steps, clip_norm, on_step, on_run)
    done = len(hist.grad_norms)
    clip_text = f", clip-norm {num(clip_norm)} ({sum(hist.clipped)} of {done} steps clipped)" if clip_norm else ""
    png, _ = loss_curve(hist.losses, hist.clipped, title=f"{Path(name).name}: gradient descent, lr {num(lr)}{clip_text}",
                        stopped=hist.stopped)
    write_atomic(curve_path, png)
    result.run = run
    caption = f"after {done} step{'s' if done != 1 else ''} of gradient descent, lr {num(lr)}{clip_text}; " \
              f"loss {num(hist.losses[0])} → {num(hist.losses[-1])}"
    dot_opts = DotOptions(rankdir=rankdir and rankdir.upper(), caption=caption)
    if fmt == "html":
        from .view.html import train_page
        from .view.graphviz import run_dot
        if not frames or frames[-1][0] != len(hist.losses) - 1:
            frames.append((len(hist.losses) - 1, run))      # stopped early: the last run is the NaN one
        data = train_page(graph, frames, hist.losses, dot_opts,
                          lambda d: run_dot(d, "svg", timeout=timeout, nodes=len(graph)).decode("utf-8")).encode("utf-8")
    else:
        data = output_bytes(result, fmt, dot_opts, timeout=timeout)
    _emit(data, path)
    if hist.stopped:
        raise CgvizError(f"{name}: {hist.stopped}. Wrote the loss curve to {curve_path} and the graph at "
                         f"that point to {path}.")
    for w in training_warnings(hist):
        click.echo(f"warning: {name}: {w}", err=True)
    if show:
        click.echo(f"loss {num(hist.losses[0])} → {num(hist.losses[-1])} in {done} steps; wrote {path} and {curve_path}",
                   err=True)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "md"]), default="text", show_default=True)
def ops(fmt):
    """List the functions and operators the expression language knows, with their formulas.

    \b
    Example:
        cgviz ops
    """
    from .lang.inits import INITS
    from .lang.ops import OPS

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
        option("seed"),
        option("trust"),
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
    """The library's TraceOptions from the values of `model_options` (mode: True train, False eval, None as saved)."""
    from .pytorch.trace import TraceOptions
    ctx = click.get_current_context(silent=True)
    max_elements = ctx.meta.get("cgviz.max_elements") if ctx is not None else None
    return TraceOptions(input_shapes=input_shapes, input_file=input_file, dtype=dtype, loss=loss, seed=seed,
                        view=view, mode=None if mode is None else ("train" if mode else "eval"), meta=meta,
                        max_elements=max_elements)


def model_stem(model: str) -> str:
    """The file part of MODEL (`gpt.py:build` → `gpt.py`), for naming outputs."""
    return model.rpartition(":")[0] if ":" in model and not Path(model).exists() else model


@main.command("torch")
@click.argument("model", metavar="MODEL")
@click.option("-o", "--output", metavar="OUT",
              help="Output file; its suffix picks the format. '-' writes to standard output.")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), help="png (default), svg, pdf, dot, json, or html (an interactive page).")
@model_options
@option("view")
@option("depth")
@option("no_fold")
@option("no_simplify")
@option("meta")
@option("no_grad", help="Leave the red gradient edges out of the picture.")
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
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def torch_cmd(model, output, fmt, input_shapes, input_file, dtype, loss, seed, view, depth, no_fold, no_simplify,
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
        cgviz torch net.py --view autograd --format json -o -
        cgviz torch net.py --profile --profile-runs 5 --top 20 -o net.svg
    """
    import dataclasses
    import time

    from .pytorch.pipeline import draw_model

    if not profile and (profile_runs or profile_top):
        raise click.UsageError("--profile-runs and --top go with --profile")
    if profile and view == "autograd":
        raise click.UsageError("--profile attributes time to the ops the model ran; it cannot be "
                               "combined with --view autograd")
    if profile and meta:
        raise click.UsageError("--profile needs a real forward and backward pass; it cannot be combined with --meta")
    _check_thresholds(vanish, explode)
    fmt, path = resolve_output(model_stem(model), output, fmt)
    _check_files(_target_inputs(model, input_file, weights), [_out("-o", path, output)])
    from .pytorch.load import check_model_files
    check_model_files(model, input_file, weights)      # before torch is imported
    opts = trace_options(input_shapes, input_file, dtype, loss, seed, mode, view=view, meta=meta)
    if profile:
        opts = dataclasses.replace(opts, profile=profile_runs or 1)
    t0 = time.perf_counter()
    res = draw_model(model, fmt, trust=trust, weights=weights, opts=opts, depth=depth, fold=not no_fold,
                     rankdir=rankdir.upper(), grad=not no_grad, timeout=timeout, profile_top=profile_top or 10,
                     vanish=vanish, explode=explode, dpi=dpi, simplify=not no_simplify)
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    if res.auto and not quiet and res.depth is not None and res.depth < res.max_depth:
        click.echo(f"note: drew modules down to depth {res.depth} of {res.max_depth} to keep the picture "
                   f"readable ({res.nodes} nodes); --depth {res.depth + 1} shows more, "
                   "--format json has every op", err=True)
    _emit(res.data, path)
    if res.profile_table and not quiet:
        # the picture on stdout (-o -) keeps stdout to itself
        click.echo(res.profile_table, nl=False, err=path is None)
    if os.environ.get("CGVIZ_TIMINGS"):
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in res.timings.items())
        click.echo(f"timings: {parts}, total {time.perf_counter() - t0:.2f} s", err=True)
    if not quiet and path is not None:
        loss_text = f"; loss = {res.loss:.4g}" if res.loss is not None else ""
        click.echo(f"wrote {path} ({res.nodes} nodes{loss_text})", err=True)


@main.command()
@click.argument("inputs", nargs=-1, metavar="[MANIFEST | FILES...]")
@click.option("--golden", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Folder of golden pictures: <entry>.png and <entry>.dot.")
@click.option("--update", is_flag=True, help="Write new goldens for the entries that changed or are new.")
@click.option("--out", "out_dir", default="snapshot-out", show_default=True, metavar="DIR",
              help="Where the new PNG/DOT and <entry>.diff.png of a changed entry go.")
@option("tolerance")
@option("threshold")
@option("jobs")
@option("timeout", help="Give up on one entry's Graphviz layout after this long.")
@click.option("--allow-trust", is_flag=True,
              help="Let manifest entries set trust = true (unpickling a module runs code from its file).")
@click.option("--allow-outside", is_flag=True,
              help="Let a manifest name files outside its own folder.")
def snapshot(inputs, golden, update, out_dir, tolerance, threshold, jobs, timeout, allow_trust, allow_outside):
    """Hold pictures of graphs steady: render every entry and compare it with its golden copy.

    Entries are .cg files, or a manifest (TOML, e.g. cgviz.toml) of [[entry]] tables with
    `file = "x.cg"` or `model = "net.py"` and the options render/torch take. The DOT must match
    exactly; the PNG pixel by pixel within --tolerance. Exit status 0 when all match, 1 when any
    changed or lacks a golden, 2 for a usage mistake.

    A manifest may name only files inside its own folder, and no entry may set trust = true,
    unless --allow-outside and --allow-trust say so: in CI a manifest comes from a pull request.

    \b
    Examples:
        cgviz snapshot sample_graphs/*.cg --golden tests/snapshots
        cgviz snapshot cgviz.toml --golden tests/snapshots -j 2
        cgviz snapshot cgviz.toml --golden tests/snapshots --update
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .pywarnings import worker_init
    from .snapshot import UsageProblem, check, entries_from_files, load_manifest, orphans, render_job

    if not inputs:
        raise click.UsageError("give a manifest (cgviz.toml) or .cg files to snapshot")
    if len(inputs) == 1 and inputs[0].endswith(".toml"):
        try:
            entries = load_manifest(Path(inputs[0]), allow_trust=allow_trust, allow_outside=allow_outside)
        except UsageProblem as e:
            raise click.UsageError(str(e)) from None
    else:
        if any(i.endswith(".toml") for i in inputs):
            raise click.UsageError("give one manifest, or files, not both")
        try:
            entries = entries_from_files(list(inputs))
        except UsageProblem as e:
            raise click.UsageError(str(e)) from None
    golden_dir, out = Path(golden), Path(out_dir)
    for flag, folder in (("--golden", golden_dir), ("--out", out)):
        if folder.exists() and not folder.is_dir():
            raise click.UsageError(f"{flag} {folder} is a file; it must name a folder (cgviz creates it if missing)")
    from .paths import check_folder, same_file
    if same_file(out, golden_dir):
        raise click.UsageError("--out must not be the --golden folder (it would overwrite the goldens)")
    check_folder(golden_dir, "--golden")
    check_folder(out, "--out")
    _check_files(*_snapshot_files(inputs[0] if inputs[0].endswith(".toml") else None, entries, golden_dir, out,
                                  update))
    from .snapshot import clear_previous
    clear_previous(out, entries)
    results = []
    with click.progressbar(length=len(entries), label="rendering", file=sys.stderr,
                           show_pos=True) as bar:
        if jobs > 1 and len(entries) > 1:
            # spawn, not fork: a forked child of a process whose torch already started threads
            # can deadlock on their locks
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=worker_init) as pool:
                for r in pool.map(render_job, entries, [timeout] * len(entries)):
                    results.append(r)
                    bar.update(1)
        else:
            for e in entries:
                results.append(render_job(e, timeout))
                bar.update(1)
    from .snapshot import Outcome
    outcomes = []
    for entry, dot_text, png, error in results:
        if error is not None:
            outcomes.append(Outcome(entry, "error", error.splitlines()[0]))
            continue
        try:
            outcomes.append(check(entry, dot_text, png, golden_dir, out, update, threshold, tolerance))
        except CgvizError as e:         # an unreadable golden: this entry's row says so, the others go on
            outcomes.append(Outcome(entry, "error", str(e).splitlines()[0]))
    width = max(len(o.entry.name) for o in outcomes)
    click.echo(f"{'entry':<{width}}  {'status':<14}  {'pixels differ':>13}  detail")
    for o in outcomes:
        share = "" if o.share is None else f"{o.share:.3%}"
        click.echo(f"{o.entry.name:<{width}}  {o.status:<14}  {share:>13}  {o.detail}".rstrip())
    lost = orphans(golden_dir, entries)
    if lost:
        click.echo(f"note: goldens in {golden_dir} that no entry claims (renamed or removed?): "
                   f"{', '.join(lost)}", err=True)
    failed = [o for o in outcomes if o.status in ("changed", "missing golden", "error")]
    written = [o.entry.name for o in outcomes if o.status in ("updated", "new")]
    if written:
        click.echo(f"wrote goldens for: {', '.join(written)}", err=True)
    if failed:
        diffs = [o.entry.name for o in failed if o.status == "changed"]
        hint = f"; new pictures and diffs are in {out}/" if diffs or len(failed) > 0 else ""
        raise _UserError(f"{len(failed)} of {len(outcomes)} entries differ from their goldens{hint}. "
                         "If the change is intended, run again with --update.")


def _snapshot_files(manifest: str | None, entries: list, golden: Path, out: Path, update: bool) -> tuple[list, list]:
    """What snapshot reads (the manifest, each entry's file, --input and --weights) and what it
    writes or removes (<entry>.png/.dot/.diff.png in --out; the goldens too with --update)."""
    from .paths import Arg
    inputs = [Arg("the manifest", manifest)]
    for e in entries:
        inputs += [Arg(f"entry {e.name!r}:", a.path) if a.option == "the input" else
                   Arg(f"entry {e.name!r}: {a.option}", a.path)
                   for a in _target_inputs(e.path, e.options.get("input"), e.options.get("weights"))]
    from .snapshot import derived
    outputs = [Arg("--out", derived(out, e.name, suffix)) for e in entries for suffix in (".png", ".dot", ".diff.png")]
    if update:
        outputs += [Arg("--golden", derived(golden, e.name, suffix)) for e in entries for suffix in (".png", ".dot")]
    return inputs, outputs


def _refuse_model_options(target, input_shapes, input_file, dtype, loss, trust, weights, mode) -> None:
    """`model_options` given with an expression file: a usage mistake, said by name, not ignored."""
    given = [flag for flag, v in (("--input-shape", input_shapes), ("--input", input_file), ("--dtype", dtype),
                                  ("--loss", loss), ("--trust", trust), ("--weights", weights),
                                  ("--train/--eval", mode is not None)) if v]
    if given:
        raise click.UsageError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to a model; "
                               f"{target} is an expression file")


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
    from .check import expression as gradcheck

    ctx = click.get_current_context()
    from .api import is_model
    if is_model(target):
        if sets:
            raise click.UsageError("--set changes declarations of an expression file; "
                                   f"{target} is a model")
        from .pytorch.load import check_model_files
        check_model_files(target, input_file, weights)      # before torch is imported
        from .check.model import check_model
        opts = trace_options(input_shapes, input_file, dtype, loss, seed, mode)
        report = check_model(target, opts, trust=trust, weights=weights, rtol=rtol, atol=atol, fd_rtol=fd_rtol,
                             fd_atol=fd_atol, fd_samples=fd_samples or 16)
    else:
        _refuse_model_options(target, input_shapes, input_file, dtype, loss, trust, weights, mode)
        from .lang.pipeline import evaluate, read_source
        overrides = parse_sets(sets)
        text, name = read_source(target)
        result = evaluate(text, name, overrides, max_elements=ctx.meta.get("cgviz.max_elements"))
        for w in result.run.warnings:
            click.echo(f"warning: {name}: {w}", err=True)
        report = gradcheck.check_expression(result, rtol=rtol, atol=atol, fd_rtol=fd_rtol, fd_atol=fd_atol,
                                            fd_samples=fd_samples or gradcheck.FD_SAMPLES, source=name)
    if fmt == "json":
        click.echo(gradcheck.to_json(report), nl=False)
    else:
        click.echo(gradcheck.to_text(report), nl=False)
    if not report.ok:
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
@click.option("--hist", metavar="PNG", help="Per-layer gradient histograms [default: <stem>_grad_hist.png].")
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
    from . import grads as G
    from .health import flag_warnings

    _check_thresholds(vanish, explode)
    stem = "stdin" if target == "-" else Path(model_stem(target)).stem
    bar_path = hist_path = None
    if not no_plots:
        bar_path = _png_path("-o", output, f"{stem}_grads.png")
        hist_path = _png_path("--hist", hist, f"{stem}_grad_hist.png")
    elif output or hist:
        raise click.UsageError("--no-plots writes no PNG; leave out -o and --hist")
    _check_files(_target_inputs(target, input_file, weights), [_out("-o", bar_path, output),
                                                               _out("--hist", hist_path, hist)])
    from .api import is_model
    model_target = is_model(target)
    if model_target:
        if sets:
            raise click.UsageError(f"--set changes declarations of an expression file; {target} is a model")
        from .pytorch.load import check_model_files, load_model
        check_model_files(target, input_file, weights)      # before torch is imported
        from .pytorch.trace import trace
        opts = trace_options(input_shapes, input_file, dtype, loss, seed, mode)
        loaded = load_model(target, trust=trust, weights=weights)
        traced = trace(loaded, opts)
        for note in traced.notes:
            click.echo(f"note: {note}", err=True)
        for w in traced.run.warnings:
            click.echo(f"warning: {w}", err=True)
        if loss is None and traced.run.meta.get("loss") == "sum":
            click.echo("note: the model's output is not a scalar, so backward starts from its sum; gradient "
                       "norms then grow with the output's size and the flags say little about training. "
                       "Give the loss you train with: --loss ce or --loss mse.", err=True)
        rows = G.model_rows(loaded.model, traced.run, vanish, explode)
        name = Path(loaded.path).name
        if not rows:
            raise CgvizError(f"{name} has no float parameters: there is no gradient per layer to show")
        title = f"{name}: ‖∂L/∂θ‖ per parameter tensor, loss ({traced.run.meta.get('loss')}) = {traced.run.loss:.4g}"
    else:
        _refuse_model_options(target, input_shapes, input_file, dtype, loss, trust, weights, mode)
        from .view.dot import headline
        from .lang.pipeline import evaluate, read_source
        text, name = read_source(target)
        ctx = click.get_current_context()
        result = evaluate(text, name, parse_sets(sets), max_elements=ctx.meta.get("cgviz.max_elements"))
        for w in result.run.warnings:
            click.echo(f"warning: {name}: {w}", err=True)
        rows = G.expression_rows(result.graph, result.run, vanish, explode)
        if not any(r.grad_norm is not None for r in rows):
            raise CgvizError(f"{name}: no param or input gets a gradient, so there is nothing to show "
                             "(declare weights with `param`, data with `input`)")
        title = f"{Path(name).name}: ‖∂L/∂·‖ per param and input, {headline(result.graph, result.run)}"
    prefix = "" if model_target else f"{name}: "     # as render says it
    for w in flag_warnings([r.verdict for r in rows if r.verdict], vanish, explode):
        click.echo(f"warning: {prefix}{w}", err=True)
    click.echo(G.FORMATS[fmt](rows, vanish, explode), nl=False)
    if no_plots:
        return
    from .view.plots import grad_bars, grad_histograms
    png, _ = grad_bars(rows, vanish, explode, title=title)
    write_atomic(bar_path, png)
    png, info = grad_histograms(rows, title=f"{Path(name).name}: gradient histogram per layer")
    write_atomic(hist_path, png)
    if not quiet:
        click.echo(f"wrote {bar_path} ({len(rows)} bars) and {hist_path} ({info['panels']} panels)", err=True)
