"""Hugging Face models by name (cgviz.pytorch.hf_source): `hf:gpt2?n_layer=2` is built through transformers
from the local cache or from a config with random weights, never downloaded unasked, drawn with its
modules' names and folds, and its gradients equal a plain PyTorch backward on the same model.

transformers is the `hf` extra, which `make install` installs: these tests run, they do not skip.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import cgviz
from cgviz.core.errors import CgvizError

FOLD = re.compile(r"<B>([\w.]+) … ([\w.]+)</B>  (\w+)  <B>×(\d+)</B>")
GPT2 = "hf:gpt2?n_layer=3&n_embd=32&n_head=2&vocab_size=100&n_positions=32"
FIELDS = dict(n_layer=3, n_embd=32, n_head=2, vocab_size=100, n_positions=32)
T5 = "hf:t5?num_layers=2&num_decoder_layers=2&d_model=32&d_kv=8&d_ff=64&num_heads=4&vocab_size=100"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and no way to reach the network: a test that tried would fail here
    rather than wait for a timeout."""
    home = tmp_path / "hf_home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    tried = []

    def refuse(self, address, *a, **k):
        tried.append(address)
        raise OSError("the test allows no network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return home, tried


def _cached_gpt2(home, repo: str = "cgviz-test/tiny-gpt2", seed: int = 1):
    """A tiny GPT-2 put in the cache as huggingface_hub lays it out (refs/main → snapshots/<sha>)."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32))
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    model.save_pretrained(folder / "snapshots" / SHA)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(SHA)
    return model


def _title(d) -> str:
    return re.search(r'label=<<B>(.*?)</B>', d.dot).group(1)


def test_a_model_type_with_a_small_config_is_drawn_by_module_and_folded(empty_cache):
    d = cgviz.draw(GPT2)
    doc = d.to_dict()
    assert {("transformer.h.0", "transformer.h.2", "GPT2Block", 3)} == {
        (a, b, c, int(n)) for a, b, c, n in FOLD.findall(d.dot)}
    assert {"transformer.h.0.attn.c_attn.weight", "transformer.h.2.mlp.c_proj.weight",
            "transformer.wte.weight"} <= set(doc["param_grad_norms"])
    modules = {n["module"] for n in doc["nodes"] if n["kind"] == "op"}
    assert {"transformer.h.0.attn", "transformer.h.1.mlp.c_fc", "transformer.ln_f"} <= modules
    title = _title(d)
    assert "GPT2LMHeadModel, random weights from transformers&#x27; default GPT2Config changed by n_layer=3" in title
    assert "inputs input_ids=[1×16] int64" in title and "eval mode" in title
    assert any("16 random token ids below vocab_size 100" in n for n in d.notes)
    assert empty_cache[1] == []


def test_gradients_equal_a_plain_pytorch_backward_on_the_same_model(empty_cache):
    doc = cgviz.draw(GPT2).to_dict()
    # the same model: random weights from seed 0, token ids from the seeded generator (--seed 0)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**FIELDS, use_cache=False)).eval()
    ids = torch.randint(0, 100, (1, 16), generator=torch.Generator().manual_seed(0))
    # no loss chosen: the labels are the input ids, so backward starts from the model's own LM loss
    out = model(input_ids=ids, labels=ids).loss
    out.backward()
    assert doc["model"]["loss_value"] == pytest.approx(float(out.detach()), rel=1e-5)
    grads = dict(model.named_parameters())
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.2.mlp.c_fc.bias", "transformer.wpe.weight",
                 "transformer.ln_f.weight"):
        assert doc["param_grad_norms"][name] == pytest.approx(float(grads[name].grad.norm()), rel=1e-4), name


def test_an_encoder_decoder_gets_decoder_inputs_too(empty_cache):
    d = cgviz.draw(T5)
    assert "T5ForConditionalGeneration" in _title(d)
    assert "inputs input_ids=[1×16] int64, decoder_input_ids=[1×16] int64" in _title(d)
    inputs = {n["name"] for n in d.to_dict()["nodes"] if n["kind"] == "input"}
    assert {"input_ids", "decoder_input_ids"} <= inputs
    assert {m for m in (n["module"] for n in d.to_dict()["nodes"]) if m.startswith("decoder.block.1")}


def test_weights_come_from_the_local_cache(empty_cache):
    home, tried = empty_cache
    model = _cached_gpt2(home).eval()
    d = cgviz.draw("hf:cgviz-test/tiny-gpt2")
    assert "GPT2LMHeadModel, weights from the local cache of cgviz-test/tiny-gpt2" in _title(d)
    ids = torch.randint(0, 100, (1, 16), generator=torch.Generator().manual_seed(0))
    assert d.to_dict()["model"]["loss_value"] == pytest.approx(float(model(input_ids=ids, labels=ids).loss.detach()), rel=1e-5)
    # a changed config no longer fits the checkpoint: random weights from the cached config, said so
    small = cgviz.draw("hf:cgviz-test/tiny-gpt2?n_layer=1")
    assert "random weights from cgviz-test/tiny-gpt2&#x27;s config changed by n_layer=1" in _title(small)
    # a folder written by save_pretrained is read as transformers reads it
    folder = home / "hub" / "models--cgviz-test--tiny-gpt2" / "snapshots" / SHA
    assert f"GPT2LMHeadModel, weights from {folder}" in _title(cgviz.draw(f"hf:{folder}"))
    assert tried == []


def test_meta_builds_no_weights_even_for_a_decoder(empty_cache):
    d = cgviz.draw("hf:llama?num_hidden_layers=2", meta=True)     # the default config: 4096 wide
    title = _title(d)
    assert "LlamaForCausalLM from transformers&#x27; default LlamaConfig" in title
    assert "traced on the meta device" in title
    assert {("model.layers.0", "model.layers.1", "LlamaDecoderLayer", 2)} == {
        (a, b, c, int(n)) for a, b, c, n in FOLD.findall(d.dot)}
    assert b"LlamaDecoderLayer" in d.svg().encode()        # Graphviz takes it (no empty FONT for absent stats)


def test_nothing_is_downloaded_unasked(cli, empty_cache, tmp_path):
    home, tried = empty_cache
    r = cli("torch", "hf:someorg/some-model", "-o", tmp_path / "x.svg")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert "hf:someorg/some-model: someorg/some-model is not in the local Hugging Face cache" in r.stderr
    assert str(home / "hub") in r.stderr and "add --download to fetch it from the Hub" in r.stderr
    assert not (tmp_path / "x.svg").exists()
    with pytest.raises(CgvizError, match=r"pass download=True .*; or draw a model type with random weights: hf:llama"):
        cgviz.draw("hf:meta-llama/Llama-3.2-1B")
    assert tried == []          # not even a look at the Hub
    # allowed, but the environment says offline: still nothing, and that is said
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        r = cli("torch", "hf:someorg/some-model", "--download", "-o", tmp_path / "x.svg")
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    assert r.exit_code == 1 and "HF_HUB_OFFLINE=1 in the environment forbids downloading it" in r.stderr
    assert tried == []


def test_download_asks_the_hub_only_when_allowed(monkeypatch, empty_cache):
    """With download=True the config is asked of the Hub (which this test cannot reach): the call that
    would fetch it is made without local_files_only."""
    import transformers
    seen = []
    real = transformers.AutoConfig.from_pretrained

    def spy(name, **kw):
        seen.append(kw["local_files_only"])
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    with pytest.raises(CgvizError, match="could not reach the Hugging Face Hub"):
        cgviz.draw("hf:someorg/some-model", download=True)
    with pytest.raises(CgvizError, match="not in the local Hugging Face cache"):
        cgviz.draw("hf:someorg/some-model")
    assert seen == [False, True]
    # the other calls that take a model pass the permission on the same way
    seen.clear()
    for call in (cgviz.gradient_health, cgviz.check_gradients):
        with pytest.raises(CgvizError, match="could not reach the Hugging Face Hub"):
            call("hf:someorg/some-model", download=True)
        with pytest.raises(CgvizError, match="not in the local Hugging Face cache"):
            call("hf:someorg/some-model")
    assert seen == [False, True, False, True]
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", real)


def test_the_command_line_draws_and_names_the_output(cli, empty_cache, here):
    r = cli("torch", GPT2, "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert (here / "gpt2.json").exists()
    doc = json.loads((here / "gpt2.json").read_text())
    assert "transformer.h.1.attn.c_proj.weight" in doc["param_grad_norms"]
    from cgviz.cli import model_stem
    from pathlib import Path
    assert Path(model_stem("hf:meta-llama/Llama-3.2-1B")).stem == "Llama-3.2-1B"
    # a file named like a spec does not make the spec a file
    (here / "hf:gpt2").write_text("param w = 1\n")
    from cgviz.api import is_model, source_kind
    assert is_model("hf:gpt2") and source_kind("hf:gpt2?n_layer=2") == "model"


def test_grads_and_check_take_a_model_by_name(cli, empty_cache, here):
    r = cli("grads", GPT2)
    assert r.exit_code == 0, r.stderr
    assert "transformer.h.2.attn.c_attn.weight" in r.stdout
    r = cli("check", "hf:gpt2?n_layer=1&n_embd=8&n_head=2&vocab_size=20&n_positions=8", "--fd-samples", "4")
    assert r.exit_code == 0, r.stdout + r.stderr


@pytest.mark.parametrize("spec, words", [
    ("hf:gpt3", "it is no model type transformers knows either (close: hf:gptj, hf:gpt2"),
    ("hf:gpt2?bogus=1", "GPT2Config has no field bogus"),
    ("hf:gpt2?n_layr=2", "GPT2Config has no field n_layr (close: n_layer"),
    ("hf:gpt2?n_embd=64", "transformers could not build GPT2LMHeadModel from this config: `embed_dim` must be divisible"),
    ("hf:bad id", "'bad id' is not a Hugging Face model id"),
    ("hf:", "give a model id or type after hf:"),
    ("hf:gpt2?n_layer", "'n_layer' is not KEY=VALUE"),
])
def test_mistakes_are_said_with_how_to_spell_it(cli, empty_cache, spec, words):
    r = cli("torch", spec, "-o", "-")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert words in r.stderr


def test_code_from_the_hub_runs_only_with_trust(cli, empty_cache, tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "cgviz_custom",
                                                    "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    (folder / "configuration_custom.py").write_text("raise SystemExit('the repository code ran')\n")
    r = cli("torch", f"hf:{folder}", "-o", "-")
    assert r.exit_code == 1 and "needs code from its repository" in r.stderr and "add --trust" in r.stderr


def test_transformers_missing_names_the_extra(monkeypatch, empty_cache):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(CgvizError, match=r"needs Hugging Face transformers.*pip install 'cgviz-backprop\[hf\]'"):
        cgviz.draw(GPT2)


def test_the_expression_path_never_imports_transformers():
    code = ("import sys, cgviz.api as a; assert a.source_kind('hf:gpt2?n_layer=2') == 'model'; "
            "from cgviz.pytorch.load import check_model_files; check_model_files('hf:gpt2?n_layer=2'); "
            "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_a_manifest_entry_names_a_model_by_name(tmp_path):
    from cgviz.snapshot.runner import entries_from_files, load_manifest
    m = tmp_path / "cgviz.toml"
    m.write_text(f'[[entry]]\nmodel = "{GPT2}"\n')
    [entry] = load_manifest(m)
    assert (entry.name, entry.path, entry.kind) == ("gpt2", GPT2, "model")
    [entry] = entries_from_files(["hf:meta-llama/Llama-3.2-1B"])
    assert entry.name == "Llama-3.2-1B"


def test_a_manifest_entry_may_allow_downloading(tmp_path, monkeypatch, empty_cache):
    """`download = true` in an entry lets its hf: model be fetched, as --download does; without it
    the Hub is never asked."""
    import transformers

    from cgviz.snapshot.runner import draw_entry, load_manifest
    seen = []

    def spy(name, **kw):
        seen.append(kw["local_files_only"])
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    m = tmp_path / "cgviz.toml"
    m.write_text('[[entry]]\nname = "a"\nmodel = "hf:someorg/some-model"\ndownload = true\n'
                 '[[entry]]\nname = "b"\nmodel = "hf:someorg/some-model"\n')
    allowed, offline = load_manifest(m)
    with pytest.raises(CgvizError, match="could not reach the Hugging Face Hub"):
        draw_entry(allowed.path, "model", allowed.options)
    with pytest.raises(CgvizError, match="not in the local Hugging Face cache"):
        draw_entry(offline.path, "model", offline.options)
    assert seen == [False, True]


def test_with_no_loss_chosen_the_model_trains_on_its_own_loss(empty_cache):
    """Backward starts from the loss the model trains with (labels given, as in training), not from
    the logits' sum whose scale says nothing; a chosen loss gets no labels; a seq2seq model reads
    its labels shifted right."""
    d = cgviz.draw(GPT2)
    doc = d.to_dict()
    assert "own" in doc["model"]["loss"] and doc["model"]["loss_value"] == pytest.approx(math.log(100), rel=0.1)
    assert "labels" in {n["name"] for n in doc["nodes"] if n["kind"] == "input"}
    assert not any("no loss given" in n for n in d.notes)
    chosen = cgviz.draw(GPT2, loss="ce").to_dict()
    assert "labels" not in {n["name"] for n in chosen["nodes"] if n["kind"] == "input"}
    from transformers import T5Config, T5ForConditionalGeneration
    t5 = cgviz.draw(T5).to_dict()
    torch.manual_seed(0)
    fields = dict(num_layers=2, num_decoder_layers=2, d_model=32, d_kv=8, d_ff=64, num_heads=4, vocab_size=100)
    model = T5ForConditionalGeneration(T5Config(**fields, use_cache=False)).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 100, (1, 16), generator=g)
    labels = torch.randint(0, 100, (1, 16), generator=g)
    shifted = torch.cat([torch.zeros_like(labels[:, :1]), labels[:, :-1]], dim=1)   # T5's pad id, 0
    want = model(input_ids=ids, decoder_input_ids=shifted, labels=labels).loss
    assert t5["model"]["loss_value"] == pytest.approx(float(want.detach()), rel=1e-5)
