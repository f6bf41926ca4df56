"""Mixed precision for training steps: `train.amp: off | bf16 | fp16`.

bf16 needs no loss scaling (same exponent range as fp32); fp16 uses a
GradScaler whose state travels in checkpoints so a resumed run scales exactly
as the uninterrupted one would. Evaluation always runs in fp32, so the figures
logged during training are the ones `edgemtl eval` reproduces.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from edgemtl.core.errors import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast context + (for fp16) a gradient scaler, for one device."""

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in ("off", *DTYPES):
            raise UserError(f"train.amp {mode!r}: expected off, bf16 or fp16")
        if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("train.amp bf16: this GPU has no bfloat16 support; use fp16")
        self.mode = mode
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=mode == "fp16")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.mode])

    def outputs_fp32(self, outputs: Any) -> Any:
        """Network outputs as fp32 for the losses, which run outside autocast.

        Why: loss code written for fp32 (e.g. `clamp_min(1e-12)` before a sqrt)
        breaks in fp16, where 1e-12 underflows to 0 and the gradient turns inf.
        """
        if not self.enabled:
            return outputs
        if isinstance(outputs, torch.Tensor):
            return outputs.float() if outputs.is_floating_point() else outputs
        if isinstance(outputs, dict):
            return {key: self.outputs_fp32(value) for key, value in outputs.items()}
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.outputs_fp32(value) for value in outputs)
        return outputs

    def loss_scale(self) -> float:
        """The factor backward passes multiply losses by: the GradScaler's scale (fp16), else 1.

        Balancers take it with the true losses (`Balancer.backward`): they
        backpropagate `scale * loss` for fp16 range but reason on unscaled values.
        A power of two, so scaling and unscaling are exact.
        """
        if not self.scaler.is_enabled():
            return 1.0
        # scale() creates the scaler's scale tensor on first use (unscale_ needs it).
        return float(self.scaler.scale(torch.ones((), device=self.device)))

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Optimizer step (skipped by the scaler when fp16 gradients overflowed)."""
        if self.scaler.is_enabled():
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler.is_enabled() else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
