"""An index built in shards, here or as a SLURM job array (:mod:`bgbias.launch`): each shard
embeds its run of the build's chunks (:mod:`.chunks`) into the build folder beside OUT, then
one merge writes the index from all of them, exactly as a one-machine build writes it (same
chunks, same item order and ids, same index type and training). OUT appears only when the
merge is complete; a rerun launches only the shards with a chunk missing."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..adapters import AdapterOptions
from ..errors import OutputError
from ..launch import LaunchOptions, ShardedRun, launch_shards, shard_settings
from .build import build_index
from .chunks import build_folder, read_plan
from .index import options_from_json

JOB_NAME = "bgbias-index"


@dataclass(frozen=True)
class ShardedBuild:
    """What :func:`launch_index_shards` did: the shards' launch, and the manifest of the index
    when it merged them (every shard finished here), else None."""

    run: ShardedRun
    manifest: dict[str, Any] | None
    submitit: Path


def run_index_shard(settings: dict[str, Any], shard: int, env=None) -> dict[str, Any]:
    """One shard's job (a launcher task): ``env`` names the GPU a local launcher gave it."""
    settings = shard_settings(settings, env)
    return build_index(**settings, step="shard", shard=shard, progress=False)


def launch_index_shards(
    model: str,
    catalogue: str | os.PathLike,
    out: str | os.PathLike,
    shards: int,
    launcher: str = "local",
    options: LaunchOptions | None = None,
    adapter: AdapterOptions | None = None,
    **settings: Any,
) -> ShardedBuild:
    """Index ``catalogue`` with ``model`` into ``out`` in ``shards`` shards: everything is
    checked and the plan written here, then the shards not finished run (``local``, followed by
    the merge) or are submitted as one job array (``slurm``; then :func:`merge_index`).
    ``settings``: the other options of :func:`bgbias.search.build.build_index`."""
    out = Path(out)
    common = {"shards": shards, "options": adapter} | settings
    plan = build_index(model, catalogue, out, step="plan", **common)
    unfinished = set(plan["unfinished"])
    spec = _spec(read_plan(build_folder(out))["build"])
    submitit = out.parent / f".{out.name}.submitit"
    run = launch_shards(
        JOB_NAME,
        functools.partial(run_index_shard, spec),
        shards,
        lambda k: k not in unfinished,
        submitit,
        launcher,
        options,
    )
    merged = None
    if launcher == "local":
        merged = merge_index(out, progress=settings.get("progress", True))
    return ShardedBuild(run, merged, submitit)


def merge_index(out: str | os.PathLike, device: str | None = None, progress: bool = True):
    """Write the index ``out`` from its finished shards (as recorded in the build folder by
    :func:`launch_index_shards`); returns its manifest. Fails in one line naming the shards
    not finished. ``device``: where the model's probe runs (default: the shards' setting)."""
    out = Path(out)
    plan = read_plan(build_folder(out))
    if plan is None or not plan.get("build"):
        raise OutputError(
            f"{out}: no index built in shards to merge (no {build_folder(out)}/plan.json); "
            "run `bgbias index MODEL CATALOGUE --out OUT --shards N` first"
        )
    spec = _spec(plan["build"])
    if device is not None:
        spec["device"] = device
    return build_index(**spec, step="merge", progress=progress)


def _spec(recorded: dict[str, Any]) -> dict[str, Any]:
    """The :func:`build_index` arguments a plan's ``build`` records."""
    spec = dict(recorded)
    spec["options"] = AdapterOptions(**options_from_json(spec["options"]))
    return spec
