"""Gradient aggregators from torchjd as balancers: `train.balancer.name: upgrad`, `cagrad`, ...

torchjd (pinned in pyproject.toml: its API changed across 0.x releases) maps the
T x P matrix of per-task gradients to one P-vector. We compute that matrix
ourselves on the shared encoder (`task_grads.shared_jacobian`: each task's
backward to the cut representation, one batched product through the encoder;
unscaled under fp16; averaged over ranks) and only hand it to the aggregator,
so every rank aggregates the same matrix and torchjd never writes `.grad`.
Task-specific parameters get the plain sum's gradient, as with PCGrad.

Conventions (docs/methods.md "Gradient aggregators"):
* Scale: aggregators whose weights are mean-normalised (sum 1) are multiplied
  by T, so that identical task gradients give the `equal` step, as MGDA-UB's
  weights are scaled to sum T. Logged weights are the applied ones.
* Weights: logged where torchjd exposes them (a hook on the aggregator's
  weighting); ConFIG and GradDrop combine the rows without per-task weights, so
  nothing is logged for them.
* Randomness (GradDrop, GradVac, RLW draw from torch's global generators, CUDA's
  for GradDrop on a GPU): each call runs under `torch.random.fork_rng` seeded
  with (`train.balancer.seed`, call count), so ranks draw alike, the training
  RNG is untouched, and a resumed run draws what the uninterrupted one would.
* State (Nash-MTL's previous weights, GradVac's cosine EMA, ExcessMTL's
  AdaGrad sums) travels in checkpoints; a step whose per-task gradients are
  non-finite (fp16 overflow) is skipped without calling the aggregator.
* An all-zero matrix (the first step, when the zero-initialised output layers
  pass no gradient into the encoder) gives a zero update without calling the
  aggregator (Nash-MTL would divide by its zero norm); weights logged as 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edgemtl.core.config import BalancerConfig
from edgemtl.core.errors import UserError
from edgemtl.training.methods.balancer_base import Balancer, TaskLosses
from edgemtl.training.methods.base import SharedCut
from edgemtl.training.methods.task_grads import finite_jacobian, set_shared_grads

#: The torchjd release whose API (and private state attributes below) this module uses.
TORCHJD_VERSION = "0.18.0"


@dataclass(frozen=True)
class Spec:
    """How one balancer name becomes a torchjd aggregator."""

    #: (recipe's balancer section, number of tasks) -> a torchjd Aggregator.
    build: Callable[[BalancerConfig, int], Any]
    #: Multiply the aggregation by T (mean-normalised weights; see the module docstring).
    times_tasks: bool
    #: Attributes of the aggregator's weighting that carry state between calls.
    state: tuple[str, ...] = ()
    #: Needs cvxpy (the `mtl` extra).
    cvxpy: bool = False


def _specs() -> dict[str, Spec]:
    import torchjd.aggregation as agg

    return {
        "upgrad": Spec(lambda cfg, t: agg.UPGrad(), True),
        "aligned_mtl": Spec(lambda cfg, t: agg.AlignedMTL(), True),
        "cagrad": Spec(lambda cfg, t: agg.CAGrad(c=cfg.c), True, cvxpy=True),
        "dualproj": Spec(lambda cfg, t: agg.DualProj(), True),
        "imtl_g": Spec(lambda cfg, t: agg.IMTLG(), True),
        "nash_mtl": Spec(
            lambda cfg, t: agg.NashMTL(n_tasks=t, max_norm=cfg.max_norm),
            False,
            ("prvs_alpha", "step"),
            cvxpy=True,
        ),
        "graddrop": Spec(lambda cfg, t: agg.GradDrop(), False),
        "config": Spec(lambda cfg, t: agg.ConFIG(), False),
        "gradvac": Spec(lambda cfg, t: agg.GradVac(), False, ("_phi_t",)),
        "fairgrad": Spec(lambda cfg, t: agg.FairGrad(alpha=cfg.fairgrad_alpha), False),
        "excess_mtl": Spec(
            lambda cfg, t: agg.ExcessMTL(),
            True,
            ("_weights", "_sq_grad_sum", "_initial_w", "_warmup_w_sum", "_n_steps"),
        ),
        "rlw": Spec(lambda cfg, t: agg.Random(), True),
    }


def _weighting(aggregator: Any) -> nn.Module | None:
    """The module whose output is the per-task weights (None: torchjd exposes none)."""
    from torchjd.aggregation import GramianWeightedAggregator, WeightedAggregator

    if isinstance(aggregator, GramianWeightedAggregator):
        return aggregator.gramian_weighting  # type: ignore[no-any-return]
    if isinstance(aggregator, WeightedAggregator):
        return aggregator.weighting  # type: ignore[no-any-return]
    return None


def _plain(value: Any) -> Any:
    """A checkpoint-safe copy (tensors on the CPU; numpy arrays become tensors)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True))
    return value


class Aggregated(Balancer):
    """A torchjd aggregator of the per-task gradient matrix on the shared encoder."""

    needs_representation = True
    per_task_gradients = True
    sets_shared_grads = True

    def __init__(self, cfg: BalancerConfig, weights: dict[str, float]) -> None:
        super().__init__(weights)
        self.name = cfg.name
        self.tasks = list(weights)
        try:
            self.spec = _specs()[cfg.name]
            self.aggregator = self.spec.build(cfg, len(self.tasks))
        except ImportError as err:  # torchjd, or an aggregator's solver, is not installed
            missing = err.name or str(err).split(" requires ")[-1].split(" to be")[0]
            raise UserError(
                f"train.balancer.name {cfg.name}: needs {missing}; install it with "
                "pip install 'edgemtl[train,mtl]'"
            ) from None
        self.seed = cfg.seed
        self.calls = 0
        self._pending: dict[str, Any] | None = None
        self._last: torch.Tensor | None = None
        weighting = _weighting(self.aggregator)
        self.exposes_weights = weighting is not None
        if weighting is not None:
            weighting.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._last = output.detach()

    @property
    def factor(self) -> float:
        return float(len(self.tasks)) if self.spec.times_tasks else 1.0

    def aggregate(self, matrix: torch.Tensor) -> torch.Tensor:
        """The aggregator's P-vector for a T x P matrix (times `factor`), with seeded draws."""
        self._restore(matrix)
        cuda = matrix.device.type == "cuda"
        devices = [matrix.device.index or torch.cuda.current_device()] if cuda else []
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            # cvxpy notes that Nash-MTL's problem is not DPP (it only re-solves slower).
            warnings.filterwarnings("ignore", message=".*not DPP.*")
            # CPU generators keep 32 bits of a seed: mix (seed, call) into 32 well-spread bits.
            torch.manual_seed(
                int(np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0])
            )
            out = self.aggregator(matrix)
        self.calls += 1
        return out * self.factor

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        matrix = finite_jacobian([losses[k] for k in self.tasks], shared_params, cuts, scale)
        if matrix is None:  # overflowed fp16 gradients: step skipped, state kept
            return {}
        if not matrix.any():  # e.g. step 1: zero-initialised output layers pass no gradient
            set_shared_grads(shared_params, torch.zeros_like(matrix[0]), scale)
            return {k: self.weights.get(k, 1.0) for k in self.tasks} if self.exposes_weights else {}
        self._last = None
        set_shared_grads(shared_params, self.aggregate(matrix), scale)
        if self._last is None:
            return {}
        return {
            k: self.weights.get(k, 1.0) * float(self._last[i]) * self.factor
            for i, k in enumerate(self.tasks)
        }

    # ------------------------------------------------------------------ state
    def _holder(self) -> Any:
        return _weighting(self.aggregator)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"calls": self.calls}
        if self._pending is not None:  # restored but not used yet
            return {**self._pending, "calls": self.calls}
        holder = self._holder()
        for attr in self.spec.state:
            state[attr] = _plain(getattr(holder, attr))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = int(state.get("calls", 0))
        kept = {k: v for k, v in state.items() if k != "calls"}
        self._pending = kept if self.spec.state else None

    def _restore(self, matrix: torch.Tensor) -> None:
        """Put a loaded state into the aggregator (lazily: it needs the matrix's device)."""
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        holder = self._holder()
        if self.name == "nash_mtl":
            alpha = pending["prvs_alpha"]
            holder.prvs_alpha = alpha.numpy().copy() if isinstance(alpha, torch.Tensor) else alpha
            holder.step = float(pending["step"])
            if holder.step > 0:  # torchjd builds its cvxpy problem on the first call only
                holder._init_optim_problem()
        elif self.name == "gradvac":
            phi = pending["_phi_t"]
            holder._phi_t = phi
            holder._state_key = None if phi is None else (phi.shape[0], phi.dtype)
        elif self.name == "excess_mtl":
            for attr in ("_weights", "_sq_grad_sum", "_initial_w", "_warmup_w_sum"):
                value = pending[attr]
                setattr(holder, attr, None if value is None else value.to(matrix.device))
            holder._n_steps = int(pending["_n_steps"])
            if holder._sq_grad_sum is not None:
                holder._state_key = (*matrix.shape, matrix.dtype, matrix.device)
