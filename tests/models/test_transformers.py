"""Real Hugging Face architectures (random weights from small configs): they fold ×N as the hand-written
twins do, a TorchScript trace folds like the Python module, and the recorded gradients equal PyTorch's.

transformers is the `hf` extra, which `make test` installs: these tests must run in CI, not skip.
"""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, T5Config, T5Model

import cgviz

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")
FOLD = re.compile(r"<B>([\w.]+) … ([\w.]+)</B>  (\w+)  <B>×(\d+)</B>")

BERT_FILE = """
import torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=64)).eval()
example_inputs = (torch.randint(0, 100, (1, 12)),)
"""


def _folds(dot: str) -> set[tuple[str, str, str, int]]:
    return {(a, b, cls, int(n)) for a, b, cls, n in FOLD.findall(dot)}


def test_llama_decoder_layers_fold_with_rotary_inputs_drawn_once():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    d = cgviz.draw(LlamaModel(cfg).eval(), torch.randint(0, 100, (1, 12)))
    assert _folds(d.dot) == {("layers.0", "layers.3", "LlamaDecoderLayer", 4)}
    assert "layers.2/" not in d.dot                     # repetitions are not drawn
    # the rotary embedding's cos and sin are each drawn once, outside the frame
    rotary = [n for n in d.to_dict()["nodes"] if n["module"] == "rotary_emb" and n["kind"] == "op"]
    assert rotary and d.dot.count('label=<<B>rotary_emb</B>') <= 1


def test_t5_folds_each_stack_after_its_first_block():
    """T5's block 0 owns the relative position bias that blocks 1… read: it is a different block, so
    each stack folds from block 1, and the encoder's output feeds the decoder's frame."""
    torch.manual_seed(0)
    t5 = T5Model(T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_decoder_layers=3,
                          num_heads=4)).eval()

    src, tgt = torch.randint(0, 100, (1, 10)), torch.randint(0, 100, (1, 6))
    d = cgviz.draw(t5, forward_kwargs={"input_ids": src, "decoder_input_ids": tgt})
    assert _folds(d.dot) == {("encoder.block.1", "encoder.block.2", "T5Block", 2),
                             ("decoder.block.1", "decoder.block.2", "T5Block", 2)}


def test_bert_as_torchscript_folds_like_the_python_module(tmp_path):
    """Issue 17: a TorchScript file used to lose folding (BERT: 152 nodes against the Python file's 59)."""
    src = tmp_path / "bert.py"
    src.write_text(BERT_FILE)
    scope: dict = {}
    exec(compile(BERT_FILE, str(src), "exec"), scope)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(scope["model"], scope["example_inputs"], strict=False)
    torch.jit.save(ts, str(tmp_path / "bert.ts"))

    py = cgviz.draw(str(src))
    script = cgviz.draw(str(tmp_path / "bert.ts"), *scope["example_inputs"])
    want = {("encoder.layer.0", "encoder.layer.2", "BertLayer", 3)}
    assert _folds(py.dot) == want and _folds(script.dot) == want
    drawn = [len(re.findall(r'^\s+"[^"]+" \[', x.dot, re.M)) for x in (py, script)]
    assert drawn[1] <= drawn[0] * 1.1, drawn
    assert script.to_dict()["model"]["loss_value"] == pytest.approx(py.to_dict()["model"]["loss_value"], rel=1e-5)


def test_bert_gradients_equal_pytorchs(cli, tmp_path):
    src = tmp_path / "bert.py"
    src.write_text(BERT_FILE)
    r = cli("check", src, "--fd-samples", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ok"] and data["torch"]
    params = [t for t in data["tensors"] if t["kind"] == "param"]
    assert len(params) >= 3 * 16              # every parameter of the three layers, and more
    assert all(t["torch"]["ok"] and t["torch"]["max_rel"] < 1e-5 for t in params)


def test_a_bert_pt2_whose_outputs_are_model_output_dataclasses_loads(tmp_path):
    """BERT's output is a transformers ModelOutput, a class torch's pytree knows only once
    transformers.modeling_outputs is imported. A fresh process (this one imported it long ago) is
    told that exact import; with --import transformers cgviz imports that submodule itself, and the
    program is drawn with the numbers it computes."""
    import subprocess
    import sys
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64)).eval()
    ids = torch.randint(0, 100, (1, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(bert, (ids,))
    torch.export.save(program, tmp_path / "bert.pt2")
    cmd = [sys.executable, "-m", "cgviz", "torch", "bert.pt2", "-f", "json", "-o", "bert.json"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "returns a transformers.modeling_outputs.BaseModelOutputWithPoolingAndCrossAttentions" in p.stderr
    assert "Add --import transformers.modeling_outputs, which defines and registers it" in p.stderr
    for extra in (["--import", "transformers"], ["--import", "transformers.modeling_outputs"]):
        p = subprocess.run(cmd + extra, cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        doc = json.loads((tmp_path / "bert.json").read_text())
        out = program.module()(ids)
        loss = sum(t.sum() for t in (out.last_hidden_state, out.pooler_output))
        assert doc["model"]["kind"] == "export"
        assert doc["model"]["loss_value"] == pytest.approx(float(loss), rel=1e-5)


def test_t5_folds_five_blocks_reads_the_position_bias_as_their_input_and_ties_lm_head():
    """Issue 24 on Hugging Face's T5 (6 + 6 layers): each stack's blocks 1–5 fold ×5 (block 0 owns the
    relative-position embedding), the [1×H×T×T] position bias block 0 computes is an input of the ×5
    box whose gradient is the sum over the five, and the tied shared.weight is drawn once at depth 1,
    feeding the encoder, the decoder and lm_head (not an output of the encoder's box)."""
    from transformers import T5ForConditionalGeneration
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=6,
                                             num_decoder_layers=6, num_heads=8)).eval()
    assert t5.lm_head.weight is t5.shared.weight
    kw = {"input_ids": torch.randint(0, 100, (1, 16)), "decoder_input_ids": torch.randint(0, 100, (1, 16))}
    d = cgviz.draw(t5, forward_kwargs=kw, depth=2)
    for stack in ("encoder", "decoder"):           # at depth 2 each fold is one box
        assert f"<B>{stack}.block.1 … {stack}.block.5  ×5</B>" in d.dot
    for stack in ("encoder", "decoder"):
        into = [line for line in d.dot.splitlines()
                if f'"{stack}/{stack}.block.0" -> "{stack}/{stack}.block.1"' in line]
        blue = [line for line in into if "dir=\"back\"" not in line]
        assert any("[1×8×16×16]" in line for line in blue), into
        assert any("(Σ 5 blocks)" in line for line in into), into
    assert not re.search(r"\b(block|step) 1 of\b", d.dot)
    top = cgviz.draw(t5, forward_kwargs=kw, depth=1).dot
    readers = set(re.findall(r'^\s*"shared.weight" -> "([^"]+)"', top, re.M))
    assert readers == {"encoder", "decoder", "lm_head"}
    assert not re.search(r'"encoder" -> "(decoder|lm_head)" \[[^\]]*\[100×32\]', top)


def test_bert_says_when_its_attention_mask_is_not_drawn(tmp_path):
    """With an all-ones mask, transformers may leave the mask off the data path (it tests it and
    moves on). Whatever this version does, the picture must not drop it silently: it is drawn, or the
    picture says it is not and what read it."""
    src = tmp_path / "bert.py"
    src.write_text(BERT_FILE.replace("example_inputs = (torch.randint(0, 100, (1, 12)),)",
                                     "example_inputs = {'input_ids': torch.randint(0, 100, (1, 12)), "
                                     "'attention_mask': torch.ones(1, 12, dtype=torch.long)}"))
    d = cgviz.draw(str(src))
    doc = d.to_dict()
    drawn = any(n["kind"] == "input" and n["name"] == "attention_mask" for n in doc["nodes"])
    said = [line for line in d.notes if line.startswith("attention_mask (all ones): not drawn")]
    assert drawn != bool(said), (drawn, d.notes)
    if said:
        assert said[0] in d.dot and "unread_inputs" in doc["model"]
