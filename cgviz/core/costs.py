"""What `--profile` measured: Cost and Profile, the result types (core: cgviz.pytorch.profile fills
them, cgviz.view.profile shows them, so neither imports the other's layer)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Apart from the run summaries (cgviz.core.summary), so that a command without --profile (every `cgviz
# render`) does not create their classes at start-up.

@dataclass
class Cost:
    """One node's (or a sum of nodes') average cost per pass."""

    fwd_us: float = 0.0
    bwd_us: float = 0.0
    mem: int = 0          # bytes allocated by its ops, forward and backward (frees not subtracted)

    @property
    def total_us(self) -> float:
        return self.fwd_us + self.bwd_us

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.fwd_us + other.fwd_us, self.bwd_us + other.bwd_us, self.mem + other.mem)


@dataclass
class Profile:
    """What the measured passes cost, averaged over `runs`; node id → Cost for recorded op nodes."""

    nodes: dict[str, Cost]
    total_us: float               # every profiler event's self CPU time, per pass
    fwd_us: float                 # attributed to nodes, forward
    bwd_us: float                 # attributed to nodes, backward
    runs: int
    device: str = "cpu"
    unattributed_by: list[tuple[str, float]] = field(default_factory=list)   # (what, µs), largest first
    wall_s: float = 0.0           # how long warm-up and measured passes took, profiler included

    @property
    def unattributed_us(self) -> float:
        return max(self.total_us - self.fwd_us - self.bwd_us, 0.0)

    def cost(self, members) -> Cost:
        """The sum over recorded nodes (a collapsed module's or a folded block's members)."""
        out = Cost()
        for m in members:
            c = self.nodes.get(m)
            if c is not None:
                out = out + c
        return out

    def share(self, cost: Cost) -> float:
        return cost.total_us / self.total_us if self.total_us > 0 else 0.0
