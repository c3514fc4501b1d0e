"""Save the sample models as files other tools hand you: `make demo` runs this, then draws them.

    python sample_graphs/models/export_samples.py OUTDIR

writes OUTDIR/res_cnn.pt2 (torch.export, with its example inputs inside), OUTDIR/tiny_gpt.pt2 and
OUTDIR/rnn_loop.ts (TorchScript) with OUTDIR/rnn_loop_inputs.pt beside it. They are generated,
not committed: binary files that any PyTorch version can write again.
"""

import importlib
import sys
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Imported as real modules (not run_path): TorchScript records each class's module name.
    sys.path.insert(0, str(HERE))
    res, gpt, rnn = (importlib.import_module(m) for m in ("res_cnn", "tiny_gpt", "rnn_loop"))
    torch.export.save(torch.export.export(res.model, res.example_inputs), out / "res_cnn.pt2")
    ids = torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(0))
    torch.export.save(torch.export.export(gpt.build().eval(), (ids,)), out / "tiny_gpt.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # TorchScript is deprecated, still met
        torch.jit.save(torch.jit.script(rnn.model), out / "rnn_loop.ts")
    torch.save(rnn.example_inputs, out / "rnn_loop_inputs.pt")
    print(f"wrote res_cnn.pt2, tiny_gpt.pt2, rnn_loop.ts and rnn_loop_inputs.pt in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out"))
