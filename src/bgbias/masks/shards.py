"""The mask job in N shards, run here or as a SLURM job array (:mod:`bgbias.launch`): shard K
is ``generate_masks(..., shard=(K, N))``. A shard is finished when its report
(``MASKS/masks-report-KofN.json``, written atomically after its last mask) lists no failed
image and every image of the shard has its mask, so a rerun launches only the shards a kill, a
time limit or a failure left unfinished."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from ..data.layout import mask_file
from ..io import ensure_writable_dir
from ..launch import LaunchOptions, ShardedRun, launch_shards, shard_settings
from .generate import claim_for_model, generate_masks, list_images
from .predictors import PREDICTORS

JOB_NAME = "bgbias-masks"


def mask_shard_finished(masks_dir: Path, files: list, shard: int, shards: int) -> bool:
    """Whether shard ``shard`` of ``shards`` of ``files`` (every image, as ``list_images``
    gives them) ran to its end with every mask written."""
    report = masks_dir / f"masks-report-{shard}of{shards}.json"
    try:
        if json.loads(report.read_text()).get("failed") != 0:
            return False
    except (OSError, ValueError):
        return False
    return all(mask_file(masks_dir, relative).is_file() for relative in files[shard::shards])


def run_mask_shard(
    images_dir: str, masks_dir: str, shards: int, settings: dict[str, Any], shard: int, env=None
) -> dict[str, Any]:
    """One shard's job (a launcher task): ``env`` names the GPU a local launcher gave it."""
    settings = shard_settings(settings, env)
    report = generate_masks(images_dir, masks_dir, shard=(shard, shards), **settings)
    return report.to_dict()


def launch_mask_shards(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    shards: int,
    launcher: str = "local",
    options: LaunchOptions | None = None,
    model: str = "u2net",
    **settings: Any,
) -> ShardedRun:
    """Masks for every image under ``images_dir`` in ``shards`` shards, those not finished run
    (``local``) or submitted as one job array (``slurm``; its scripts and logs in
    ``MASKS/.submitit``). ``settings``: the other options of
    :func:`bgbias.masks.generate.generate_masks` (plain values: a job unpickles them)."""
    images_dir, masks_dir = Path(images_dir).resolve(), Path(masks_dir).resolve()
    files = list_images(images_dir, masks_dir)  # a missing image folder fails here, not in jobs
    PREDICTORS.get(model)  # so does an unknown model, before the mask folder is touched
    ensure_writable_dir(masks_dir)
    claim_for_model(masks_dir, model)  # masks of another model fail now, not in the jobs
    task = functools.partial(
        run_mask_shard, str(images_dir), str(masks_dir), shards, settings | {"model": model}
    )
    return launch_shards(
        JOB_NAME,
        task,
        shards,
        functools.partial(mask_shard_finished, masks_dir, files, shards=shards),
        masks_dir / ".submitit",
        launcher,
        options,
    )
