"""Optimisers by name; the loss's own parameters (ArcFace / Normalized Softmax class weights)
go into a second parameter group with their own learning rate (``lr_loss``, as the paper
trains them)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .errors import ConfigError
from .registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.register(
    "rmsprop",
    lambda groups, lr, wd, momentum: torch.optim.RMSprop(
        groups, lr=lr, weight_decay=wd, momentum=momentum
    ),
)
OPTIMIZERS.register(
    "adam", lambda groups, lr, wd, momentum: torch.optim.Adam(groups, lr=lr, weight_decay=wd)
)
OPTIMIZERS.register(
    "adamw", lambda groups, lr, wd, momentum: torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
)
OPTIMIZERS.register(
    "sgd",
    lambda groups, lr, wd, momentum: torch.optim.SGD(
        groups, lr=lr, weight_decay=wd, momentum=momentum
    ),
)


# Per-step schedules over the whole run; "constant" is the paper's (no schedule).
SCHEDULERS: Registry = Registry("scheduler")
SCHEDULERS.register("constant", lambda optimizer, total_steps: None)
SCHEDULERS.register(
    "cosine",
    lambda optimizer, total_steps: torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(total_steps, 1)
    ),
)


def build_optimizer(
    name: str,
    model_params: Iterable[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    momentum: float,
    loss_params: Iterable[torch.nn.Parameter] = (),
    loss_lr: float | None = None,
) -> torch.optim.Optimizer:
    groups = [{"params": list(model_params), "name": "model"}]
    loss_params = list(loss_params)
    if loss_params:
        if loss_lr is None:
            raise ConfigError("this loss has parameters: set loss.lr (lr_loss)")
        groups.append({"params": loss_params, "lr": loss_lr, "name": "loss"})
    return OPTIMIZERS.get(name)(groups, lr, weight_decay, momentum)
