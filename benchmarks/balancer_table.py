"""docs/methods.md's table of every balancer: paper, what it optimises, measured step cost.

Not a benchmark of its own: `markdown(result)` renders the table from
benchmarks/results/train_step.json (`python benchmarks/readme_tables.py` writes
it into docs/methods.md between `<!-- bench:balancer_table:train_step -->` and
`<!-- /bench -->`). The cost column is the "vanilla + NAME" row's median step
time over the plain vanilla step (`equal`); "-" until that row is measured.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgemtl.core.config import BALANCER_NAMES  # noqa: E402 (after the path insert)

#: name -> (paper, what it optimises / how it combines, recipe keys). One row per name of
#: `edgemtl.core.config.BALANCER_NAMES` (tests/training/test_balancers.py checks).
DESCRIPTIONS: dict[str, tuple[str, str, str]] = {
    "equal": ("the papers' uniform baseline", "Σ_t w_t L_t with the recipe weights", ""),
    "uncertainty": (
        "Kendall et al., CVPR 2018",
        "Σ exp(−s_t) L_t + s_t, learned log-variances s_t (weight logged: exp(−s_t))",
        "",
    ),
    "dwa": (
        "Liu et al. (MTAN), CVPR 2019",
        "w_t = T softmax(r_t / temperature), r_t = L_t(e−1) / L_t(e−2); 1 for two epochs",
        "`temperature` (2)",
    ),
    "gradnorm": (
        "Chen et al., ICML 2018",
        "weights (sum T) so each task's gradient norm on the last shared layer tracks its "
        "relative training rate",
        "`alpha` (1.5), `lr` (0.025)",
    ),
    "mgda": (
        "Sener & Koltun, NeurIPS 2018 (MGDA-UB)",
        "exact min-norm point of the hull of the per-task gradients on the shared "
        "representation; weights scaled to sum T",
        "",
    ),
    "pcgrad": (
        "Yu et al., NeurIPS 2020",
        "each task gradient projected off the ones it conflicts with (random order), summed",
        "`seed`",
    ),
    "upgrad": (
        "Quinton & Rey, 2024 (Jacobian descent)",
        "mean of each task gradient projected onto the dual cone of all of them: no task's "
        "loss increases to first order",
        "",
    ),
    "aligned_mtl": (
        "Senushkin et al., CVPR 2023",
        "gradients made orthogonal and equal-norm (condition number 1) before averaging",
        "",
    ),
    "cagrad": (
        "Liu et al., NeurIPS 2021",
        "maximises the worst task's improvement within a ball of radius c‖g₀‖ around the mean "
        "gradient g₀ (cvxpy)",
        "`c` (0.4)",
    ),
    "dualproj": (
        "Lopez-Paz & Ranzato, NeurIPS 2017 (GEM)",
        "the mean gradient projected onto the dual cone of the task gradients",
        "",
    ),
    "imtl_g": (
        "Liu et al., ICLR 2021 (IMTL-G)",
        "the combination whose projections onto every task's unit gradient are equal",
        "",
    ),
    "nash_mtl": (
        "Navon et al., ICML 2022",
        "Nash bargaining: weights with (Gα)_t = 1/α_t, update norm clipped (cvxpy, stateful)",
        "`max_norm` (1)",
    ),
    "graddrop": (
        "Chen et al., NeurIPS 2020",
        "per coordinate, keeps the positive or the negative gradients with probability given "
        "by their sign purity (random; no per-task weights)",
        "`seed`",
    ),
    "config": (
        "Liu et al., ICLR 2025 (ConFIG)",
        "the direction with equal cosine to every task gradient, length Σ_t g_t·u "
        "(no per-task weights)",
        "",
    ),
    "gradvac": (
        "Wang et al., ICLR 2021",
        "raises each pair's cosine similarity to its running average (random order, stateful)",
        "`seed`",
    ),
    "fairgrad": (
        "Ban & Ji, ICML 2024",
        "α-fair allocation of the loss decrease: (Gw)_t = w_t^(−1/α)",
        "`fairgrad_alpha` (1)",
    ),
    "excess_mtl": (
        "He et al., ICML 2024",
        "exponentiated-gradient weights driven by each task's excess-risk estimate (stateful)",
        "",
    ),
    "rlw": (
        "Lin et al., TMLR 2022 (random loss weighting)",
        "softmax of fresh normal draws as weights, every step",
        "`seed`",
    ),
}
if set(DESCRIPTIONS) != set(BALANCER_NAMES):
    raise RuntimeError(f"DESCRIPTIONS {sorted(DESCRIPTIONS)} != {sorted(BALANCER_NAMES)}")


def markdown(result: dict[str, Any]) -> str:
    """The balancer table, with each balancer's measured cost from train_step.json."""
    rows = {row["row"]: row for row in result["rows"]}
    base = rows["vanilla"]["s_per_step_median"]
    cfg = result["config"]
    lines = [
        f"Cost: median step time on the vanilla network over the plain step (`equal`), "
        f"{cfg['device']}, width {cfg['width']}, {cfg['size']}, batch {cfg['batch']}, 5 tasks "
        '(`benchmarks/results/train_step.json`; "-": not measured yet).',
        "",
        "| name | paper | what it optimises | keys | step cost × equal |",
        "|---|---|---|---|---:|",
    ]
    for name in BALANCER_NAMES:
        paper, what, keys = DESCRIPTIONS[name]
        row = rows.get("vanilla" if name == "equal" else f"vanilla + {name}")
        cost = f"{row['s_per_step_median'] / base:.2f}" if row else "-"
        lines.append(f"| `{name}` | {paper} | {what} | {keys} | {cost} |")
    return "\n".join(lines) + "\n"
