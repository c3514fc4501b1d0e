"""Hugging Face models by name (`hf:gpt2`, `hf:org/name?n_layer=2`), built through transformers (the `hf` extra).

A spec is `hf:ID[?KEY=VALUE&KEY=VALUE…]`. ID is a model id of the Hub (`meta-llama/Llama-3.2-1B`,
`gpt2`), a folder written by `save_pretrained`, or a bare model type (`gpt2`, `bert`, `llama`, `t5`).
The model is built, in order of preference:
1. with its weights from the local Hugging Face cache (or that folder);
2. with random weights from its config in the cache, when the cache has no weights for it;
3. with random weights from transformers' default config of a model type (`AutoConfig.for_model`);
4. from the Hub, only when downloads are allowed (`--download`, `download=True`), and never when the
   environment says HF_HUB_OFFLINE=1.
The KEY=VALUE pairs change config fields before the model is built (small configs for quick looks);
a changed config no longer fits a checkpoint, so its weights are random. `--meta` builds the model
on the meta device (no memory for weights). Random weights are drawn from seed 0, so the same
command draws the same numbers. Code from the Hub (`trust_remote_code`) runs only with `--trust`.
Nothing here imports transformers (or torch) until a model is loaded.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import CgvizError
from ..core.paths import HUB, is_hub
from ..core.spelling import on_command_line, spell
from .load import _first_line

SEED = 0                 # random weights: the same command draws the same numbers
LENGTH = 16              # example inputs: this many tokens, fewer when the model has fewer positions
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_POSITIONS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "max_sequence_length",
              "seq_length")
# Where a config names no architecture (a model type's default config): the first of these heads
# that transformers has for it. Seq2seq first (BART is in the masked-LM table too), masked LM before
# causal LM (BERT's causal head wants is_decoder=True), a bare AutoModel last.
_HEADS = ("AutoModelForSeq2SeqLM", "AutoModelForMaskedLM", "AutoModelForCausalLM",
          "AutoModelForImageClassification", "AutoModel")
_PASSED = ("attn_implementation",)     # keys given to the model's constructor, not set on the config

# Whether a model may be fetched from the Hub when it is not in the local cache. `load_model`'s
# download= says it for one call; the command line's --download sets this for its command.
DOWNLOADS: ContextVar[bool] = ContextVar("cgviz_hf_downloads", default=False)


@contextlib.contextmanager
def downloads(allowed: bool = True):
    """Allow (or forbid) fetching `hf:` models from the Hub while the block runs."""
    token = DOWNLOADS.set(allowed)
    try:
        yield
    finally:
        DOWNLOADS.reset(token)


@dataclass(frozen=True)
class HubSpec:
    """An `hf:` spec, read without transformers: the id and the config fields to change."""

    text: str
    ident: str
    overrides: dict[str, Any] = field(default_factory=dict)


def spelling_help() -> str:
    return ("write hf:ORG/NAME for a model of the Hugging Face Hub (hf:meta-llama/Llama-3.2-1B), hf:TYPE for "
            "a model type with random weights (hf:gpt2, hf:bert, hf:llama, hf:t5), and change config "
            "fields after a '?': hf:gpt2?n_layer=2&n_embd=64&n_head=2")


def parse(spec: str) -> HubSpec:
    """`hf:gpt2?n_layer=2&n_embd=64` → HubSpec("gpt2", {"n_layer": 2, "n_embd": 64}); mistakes are
    CgvizErrors that say how to spell it."""
    if not is_hub(spec):
        raise CgvizError(f"{spec!r} is not a Hugging Face model spec; {spelling_help()}")
    ident, sep, query = spec[len(HUB):].partition("?")
    if not ident:
        raise CgvizError(f"{spec!r}: give a model id or type after hf:; {spelling_help()}")
    if not os.path.isdir(ident) and (not _ID.fullmatch(ident) or len(ident) > 96 or ".." in ident
                                     or "--" in ident or ident.endswith((".", "-"))):
        raise CgvizError(f"{spec!r}: {ident!r} is not a Hugging Face model id (letters, digits, '-', '_' and '.', "
                         f"with at most one '/'), nor a folder; {spelling_help()}")
    overrides: dict[str, Any] = {}
    for item in query.split("&") if sep else ():
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key.isidentifier() or not value:
            raise CgvizError(f"{spec!r}: {item!r} is not KEY=VALUE; change config fields as "
                             "hf:gpt2?n_layer=2&n_embd=64&n_head=2")
        if key in overrides:
            raise CgvizError(f"{spec!r}: {key} is given twice")
        overrides[key] = _value(value)
    return HubSpec(spec, ident, overrides)


def _value(text: str) -> Any:
    """A config value as written after `=`: a whole number, a number, true/false, none, else text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def hub_cache() -> str:
    """The Hugging Face cache folder as huggingface_hub finds it, read now (huggingface_hub reads the
    environment once, when it is imported; HF_HOME set later, as a test does, would be missed)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expanduser(os.path.expandvars(cache))


def _offline_by_environment() -> bool:
    return any(os.environ.get(k, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@contextlib.contextmanager
def _offline(on: bool):
    """No request to the Hub while the block runs (when `on`): the environment variable for code that
    reads it, and huggingface_hub's own flag, which it read at import and its HTTP session checks."""
    if not on:
        yield
        return
    import huggingface_hub.constants as constants
    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


@contextlib.contextmanager
def _quiet(bars: bool):
    """transformers' log lines (a config's token ids outside a shrunk vocabulary, unused weights) and,
    unless it downloads (`bars`), its progress bar over the weights stay off stderr, as cgviz keeps
    Python warnings off it (cgviz.core.pywarnings)."""
    from transformers.utils import logging as hf_logging
    level, shown = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if shown:
            hf_logging.enable_progress_bar()


def _types() -> list[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    return list(CONFIG_MAPPING_NAMES)


def _type_in(ident: str) -> str | None:
    """The model type an id is most likely of (`meta-llama/Llama-3.2-1B` → llama), for a hint."""
    name = ident.rpartition("/")[2].lower()
    found = [t for t in _types() if len(t) > 2 and t in name]
    return max(found, key=len) if found else None


def _allow_hint() -> str:
    return (f"add {spell('download')} to fetch it from the Hub" if on_command_line()
            else "pass download=True to fetch it from the Hub")


def _not_found(ref: HubSpec, online: bool, asked: bool) -> CgvizError:
    """The message for an id that is neither in the cache nor a model type: how to allow downloading,
    and how to spell a model type instead."""
    types = _types()
    kind = _type_in(ref.ident)
    close = difflib.get_close_matches(ref.ident.lower(), types, n=4, cutoff=0.6)
    if kind:
        instead = f"; or draw a model type with random weights: hf:{kind}"
    elif close:
        instead = f"; it is no model type transformers knows either (close: {', '.join('hf:' + c for c in close)})"
    else:
        instead = f"; it is no model type transformers knows either ({spelling_help()})"
    if online:
        return CgvizError(f"{ref.text}: the Hugging Face Hub has no model {ref.ident} that could be fetched{instead}")
    where = f"not in the local Hugging Face cache ({hub_cache()})"
    if asked and _offline_by_environment():
        return CgvizError(f"{ref.text}: {ref.ident} is {where}, and HF_HUB_OFFLINE=1 in the environment forbids "
                          f"downloading it; unset HF_HUB_OFFLINE to fetch it{instead}")
    return CgvizError(f"{ref.text}: {ref.ident} is {where}, and cgviz downloads nothing unless you allow it: "
                      f"{_allow_hint()}{instead}")


def _config(ref: HubSpec, transformers, trust: bool, online: bool, cache: str, asked: bool):
    """(config, where it came from: "local" | "hub" | "default")."""
    local = os.path.isdir(ref.ident)
    try:
        config = transformers.AutoConfig.from_pretrained(ref.ident, cache_dir=cache, local_files_only=not online,
                                                         trust_remote_code=trust)
        return config, "local" if local or not online else "hub"
    except ValueError as e:
        text = _first_line(e)
        if "trust_remote_code" in str(e) or "custom code" in str(e):
            raise CgvizError(f"{ref.text}: this model's config needs code from its repository, which runs "
                             f"with your account's rights; cgviz runs it only when you say you trust it: add "
                             f"{spell('trust')}") from None
        raise CgvizError(f"{ref.text}: transformers cannot read this model's config: {text}") from None
    except OSError as e:
        if local:
            raise CgvizError(f"{ref.text}: the folder {ref.ident} holds no Hugging Face model (config.json): "
                             f"{_first_line(e)}") from None
        if ref.ident in _types():
            return transformers.AutoConfig.for_model(ref.ident), "default"
        if online and "connect" in str(e).lower():
            raise CgvizError(f"{ref.text}: could not reach the Hugging Face Hub to fetch {ref.ident}: "
                             f"{_first_line(e)}") from None
        raise _not_found(ref, online, asked) from None


def _change(ref: HubSpec, config) -> list[str]:
    """Set the spec's config fields, each one the config has; returns them as `key=value`."""
    done = []
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}))
    for key, value in ref.overrides.items():
        if key in _PASSED:
            continue
        if key not in known and not hasattr(config, key):
            close = difflib.get_close_matches(key, sorted(k for k in known if not k.startswith("_")), n=4)
            hint = f" (close: {', '.join(close)})" if close else ""
            raise CgvizError(f"{ref.text}: {type(config).__name__} has no field {key}{hint}")
        old = getattr(config, key, None)
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        setattr(config, key, value)
        done.append(f"{key}={value}")
    return done


def _head(config, transformers, trust: bool):
    """The model class to build: the config's own architecture, else the first head transformers has
    for the config's type (a causal LM for GPT-2, a masked LM for BERT, seq2seq for T5)."""
    auto_map = getattr(config, "auto_map", None) or {}
    for arch in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    if auto_map and trust:
        for name in _HEADS:
            if name in auto_map:
                return getattr(transformers, name)
    for name in _HEADS:
        auto = getattr(transformers, name)
        if type(config) in auto._model_mapping:
            return auto._model_mapping[type(config)]
    raise CgvizError(f"transformers has no model class for a {type(config).__name__}")


def _build(ref: HubSpec, cls, config, origin: str, *, meta: bool, trust: bool, online: bool, cache: str):
    """(model, how its weights came: "cache" | "hub" | "random" | "meta")."""
    import torch
    kwargs = {k: ref.overrides[k] for k in _PASSED if k in ref.overrides}
    auto = cls.__name__.startswith("AutoModel")
    if auto:
        kwargs["trust_remote_code"] = trust

    def from_config():
        return cls.from_config(config, **kwargs) if auto else cls._from_config(config, **kwargs)
    try:
        if meta:
            with torch.device("meta"):
                return from_config(), "meta"
        changed = any(k not in _PASSED for k in ref.overrides)
        if origin != "default" and not changed:
            try:
                model = cls.from_pretrained(ref.ident, config=config, cache_dir=cache, local_files_only=not online,
                                            **kwargs)
                return model, "hub" if origin == "hub" else "cache"
            except OSError:
                pass            # the config is there but no weights: random ones, said in the title
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return from_config(), "random"
    except CgvizError:
        raise
    except (ValueError, TypeError, AttributeError, RuntimeError, ImportError, AssertionError) as e:
        raise CgvizError(f"{ref.text}: transformers could not build {cls.__name__} from this config: "
                         f"{_first_line(e)}") from None


def _what(ref: HubSpec, cls, config, origin: str, how: str, changed: list[str]) -> str:
    """The title's words for where the model came from."""
    source = (f"transformers' default {type(config).__name__}" if origin == "default"
              else f"{ref.ident}'s config")
    tail = f" changed by {', '.join(changed)}" if changed else ""
    if how == "meta":
        return f"{cls.__name__} from {source}{tail}"
    if how in ("cache", "hub"):
        # the title's head is the id's last part (gpt2 of openai-community/gpt2): the rest is said here
        named = f" of {ref.ident}" if "/" in ref.ident else ""
        where = (ref.ident if os.path.isdir(ref.ident) else
                 f"the local cache{named}" if how == "cache" else f"the Hub{named}")
        return f"{cls.__name__}, weights from {where}"
    return f"{cls.__name__}, random weights from {source}{tail}"


def load_hub(spec: str, trust: bool = False, meta: bool = False, download: bool | None = None):
    """An `hf:` spec as a Loaded model of kind "hf", in eval mode as a checkpoint loads, with no KV cache
    in its output (the loss would otherwise sum the cache too)."""
    from ..core.needs import require_transformers
    from .load import Loaded
    ref = parse(spec)
    transformers = require_transformers(f"drawing the Hugging Face model {spec}")
    asked = DOWNLOADS.get() if download is None else bool(download)
    online = asked and not _offline_by_environment()
    cache = hub_cache()
    with _offline(not online), _quiet(online):
        config, origin = _config(ref, transformers, trust, online, cache, asked)
        changed = _change(ref, config)
        if hasattr(config, "use_cache"):
            config.use_cache = False
        cls = _head(config, transformers, trust)
        model, how = _build(ref, cls, config, origin, meta=meta, trust=trust, online=online, cache=cache)
    model.eval()
    loaded = Loaded("hf", model, spec)
    loaded.what = _what(ref, cls, config, origin, how, changed)
    if how == "random" and origin == "default":
        loaded.notes.append(f"random weights (seed {SEED}) from transformers' default "
                            f"{type(config).__name__}; a model id in the local cache (hf:ORG/NAME) brings its "
                            f"weights, and {spell('download')} fetches one from the Hub")
    elif how == "random":
        loaded.notes.append(f"random weights (seed {SEED}) from {ref.ident}'s config"
                            + (" (a changed config does not fit the checkpoint)" if changed
                               else " (the local cache holds its config but no weights)"))
    return loaded


def run(model, args, kwargs, rec):
    """Call an `hf:` model. On the meta device, transformers' mask code (masking_utils) would ask a
    tensor for its value (`(mask == 0).all()`), which a meta tensor does not have, unless it is
    tracing: there it is told so for meta tensors, as it is told for torch.export's fake tensors."""
    import torch
    tensors = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)]
    if not any(t.device.type == "meta" for t in tensors):
        return model(*args, **kwargs)
    import transformers.masking_utils as masks
    tracing = getattr(masks, "is_tracing", None)
    if tracing is None:
        return model(*args, **kwargs)
    masks.is_tracing = lambda t=None: tracing(t) or (isinstance(t, torch.Tensor) and t.device.type == "meta")
    try:
        return model(*args, **kwargs)
    finally:
        masks.is_tracing = tracing


def _positions(config) -> int | None:
    found = [getattr(config, k, None) for k in _POSITIONS]
    found = [v for v in found if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return min(found) if found else None


def _vocab(config) -> int | None:
    v = getattr(config, "vocab_size", None)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def example_inputs(loaded, opts) -> dict:
    """Example inputs from the model's config, as forward's keyword arguments: LENGTH token ids within
    the vocabulary (fewer when the model has fewer positions), and the decoder's too for an
    encoder-decoder; an image model gets one image of its config's size."""
    import torch
    model = loaded.model
    config = model.config
    g = torch.Generator().manual_seed(opts.seed)
    name = getattr(model, "main_input_name", "input_ids")
    if name == "input_ids":
        try:
            text, decoder = config.get_text_config(encoder=True), config.get_text_config(decoder=True)
        except (TypeError, ValueError, AttributeError):
            text = decoder = config
        vocab = _vocab(text) or _vocab(config)
        if vocab is None:
            raise CgvizError(f"{loaded.path}: its config gives no vocab_size to draw token ids from; give "
                             f"{spell('input_shape', '1,16:long')} or {spell('input', 'inputs.pt')}")
        n = min(LENGTH, _positions(text) or LENGTH)
        out = {"input_ids": torch.randint(0, vocab, (1, n), generator=g)}
        said = f"input_ids: {n} random token ids below vocab_size {vocab}"
        if getattr(config, "is_encoder_decoder", False):
            m = min(LENGTH, _positions(decoder) or LENGTH)
            dvocab = _vocab(decoder) or vocab
            out["decoder_input_ids"] = torch.randint(0, dvocab, (1, m), generator=g)
            said += f", and decoder_input_ids: {m}"
    elif name == "pixel_values":
        size = getattr(config, "image_size", None) or 224
        h, w = (size, size) if isinstance(size, int) else tuple(size)[:2]
        channels = getattr(config, "num_channels", None) or 3
        out = {"pixel_values": torch.randn(1, channels, h, w, generator=g)}
        said = f"pixel_values: one random {channels}×{h}×{w} image"
    else:
        raise CgvizError(f"{loaded.path}: {type(model).__name__} reads {name}, for which cgviz makes no example "
                         f"inputs; give them with {spell('input', 'inputs.pt')} (a dict saved with torch.save, "
                         f"keyed by forward's argument names) or {spell('input_shape')}")
    if getattr(opts.loss, "spec", opts.loss) is None and getattr(opts.loss, "targets", None) is None:
        said += _labels(model, config, out, g)     # no loss chosen (opts.loss is None or an empty Loss)
    loaded.notes.append(f"example inputs from the config ({said})")
    return out


def _labels(model, config, out: dict, g) -> str:
    """Labels for a head that computes its own training loss when given them, so that backward starts
    from the loss the model trains with (rule 2 of cgviz.pytorch.loss) instead of the logits' sum,
    whose scale says nothing; "" (and no labels) for a model whose forward takes none."""
    import inspect

    import torch
    if "labels" not in inspect.signature(model.forward).parameters:
        return ""
    cls = type(model).__name__
    if getattr(config, "is_encoder_decoder", False):
        if "decoder_input_ids" not in out:
            return ""
        # as in training: the targets are the labels, the decoder reads them shifted right behind its
        # start token (written out: a default config may lack the id that the model's own shift needs)
        labels = out["labels"] = out["decoder_input_ids"]
        start = next((t for t in (getattr(config, "decoder_start_token_id", None), getattr(config, "pad_token_id", None))
                      if isinstance(t, int)), 0)
        out["decoder_input_ids"] = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], dim=1)
        return "; labels: the random decoder ids, read shifted right by the decoder, so the loss is the model's own"
    if cls.endswith(("ForCausalLM", "LMHeadModel", "ForMaskedLM")) and "input_ids" in out:
        out["labels"] = out["input_ids"].clone()        # the model shifts them itself for next-token loss
        return "; labels: the input ids, so the loss is the model's own language-modelling loss"
    if cls.endswith(("ForSequenceClassification", "ForImageClassification")):
        n = int(getattr(config, "num_labels", 2) or 2)
        out["labels"] = torch.randint(0, n, (1,), generator=g)
        return f"; labels: one random class of {n}, so the loss is the model's own"
    return ""
