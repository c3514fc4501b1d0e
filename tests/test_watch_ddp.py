"""cgviz.watch under DistributedDataParallel: two CPU processes on gloo, rank 0 writes."""

from __future__ import annotations

import os
import socket
import sys

import torch
import torch.multiprocessing as mp

from cgviz.watch.read import read_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, path: str, root: str) -> None:
    sys.path.insert(0, root)
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    import cgviz
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(rank)          # each rank its own batch
    x, y = torch.randn(32, 6, generator=g), torch.randn(32, 1, generator=g)
    with cgviz.watch(model, path, every=2) as w:
        for _ in range(6):
            loss = F.mse_loss(model(x), y)
            loss.backward()                       # DDP averages the gradients over the ranks
            w.step(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
    # the averaged gradient is every rank's: rank 0's record holds it; keep this rank's final weights
    torch.save(model.module.state_dict(), f"{path}.rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_two_gloo_processes_rank_0_writes(tmp_path):
    path = tmp_path / "run.cgw"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mp.spawn(_worker, args=(2, _free_port(), str(path), root), nprocs=2, join=True)
    run = read_run(path)
    assert run.header["world_size"] == 2 and run.header["rank"] == 0
    assert [s.step for s in run.steps] == [0, 2, 4]
    assert set(run.params) == {"0.weight", "0.bias", "2.weight", "2.bias"}     # no "module." prefix
    assert all(s.params["0.weight"].update > 0 for s in run.steps)
    assert run.steps[0].modules["1"].dead is not None
    assert run.graph is not None
    a = torch.load(f"{path}.rank0.pt")
    b = torch.load(f"{path}.rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)      # watching rank 0 left the ranks in step
