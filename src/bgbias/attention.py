"""`bgbias attention`: attention scores of every test image, per model, resumable, and the
summary table and figure (Kobs & Hotho 2022, Section 6).

Each model's scores live in ``OUT/<key>.csv`` beside ``OUT/<key>.meta.json``. The key comes
from the model's identity (a checkpoint's path, a backbone's name), so two runs of one preset
never share a file; the meta records the model's content hash and every setting that changes a
score, and a file whose meta differs is scored afresh instead of being reported as done.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .adapters import AdapterOptions, Embedder, load_embedder
from .attribution import (
    NOISE_LEVEL,
    SAMPLES,
    attention_maps,
    attention_scores,
    frozen,
    reference_embedding,
    summarize_scores,
)
from .data.datasets import MaskedImageDataset
from .data.registry import open_split
from .data.transforms import PairedTransform, Recipe
from .devices import resolve_device
from .errors import ConfigError
from .io import (
    atomic_write,
    lock_folder,
    remove_tree,
    write_json,
    write_text,
)
from .outputs import check_output, claim_output
from .progress import progress_bar

log = logging.getLogger(__name__)
HEADER = ["image", "score"]
# file names may hold bytes that are not UTF-8 (os.fsdecode maps them to surrogates)
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape", "newline": ""}
# a killed attention job's half-written files (atomic_write's temporaries of its own outputs),
# cleared under its lock; other jobs' temporary files and folders in OUT are never touched
LEFTOVERS = (".*.csv.*.tmp", ".*.meta.json.*.tmp", ".summary.*.tmp", ".attribution.png.*.tmp")


class ScoreFile:
    """One model's per-image scores on one image set: ``<key>.csv`` (``image,score``, appended
    as it goes) and ``<key>.meta.json`` (what the scores depend on)."""

    def __init__(self, folder: Path, key: str, meta: dict[str, Any]):
        self.path = folder / f"{key}.csv"
        self.meta_path = folder / f"{key}.meta.json"
        self.meta = meta

    def load(self) -> dict[str, float]:
        """Scores already there for these settings; stale, foreign or damaged files are
        discarded (and said so), a partly written last row is cut off."""
        if self.path.exists() or self.meta_path.exists():
            problem = self._problem()
            if problem is None:
                return self._read()
            log.warning("%s: %s; scoring afresh", self.path, problem)
            remove_tree(self.path)
            remove_tree(self.meta_path)
        write_json(self.meta_path, self.meta)
        with atomic_write(self.path, "w", durable=True) as handle:
            handle.write(",".join(HEADER) + "\n")
        return {}

    def _problem(self) -> str | None:
        try:
            saved = self.meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return "no record of the settings it was made with"
        try:
            if json.loads(saved) != self.meta:
                return "made with another model or other settings"
        except json.JSONDecodeError:
            return "unreadable settings record"
        if not self.path.is_file():
            return "scores file missing"
        with open(self.path, "rb") as handle:
            if handle.readline().rstrip(b"\r\n") != ",".join(HEADER).encode():
                return "no 'image,score' header (damaged)"
        return None

    def _read(self) -> dict[str, float]:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        scores = {}
        with open(self.path, **ENCODING) as handle:
            rows = csv.reader(handle)
            next(rows)
            for row in rows:
                if len(row) == 2:
                    scores[row[0]] = float(row[1])
        return scores

    def append(self, rows: list[tuple[str, float]]) -> None:
        with open(self.path, "a", **ENCODING) as handle:
            csv.writer(handle, lineterminator="\n").writerows(
                (image, repr(score)) for image, score in rows
            )
            handle.flush()


def read_scores(path: str | os.PathLike) -> dict[str, float]:
    """The scores in a per-model CSV written by :func:`score_dataset`."""
    path = Path(path)
    return ScoreFile(path.parent, path.stem, {})._read() if path.is_file() else {}


def score_dataset(
    model: torch.nn.Module,
    recipe: Recipe,
    distance,
    dataset: MaskedImageDataset,
    scores: ScoreFile,
    seed: int = 0,
    images_per_pass: int | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Attention score of every image of ``dataset`` (``recipe``'s eval transform, with masks)
    for ``model`` (normalised images -> embeddings) and its ``distance``, appended to
    ``scores`` as it goes; a rerun skips images already scored. Image i's SmoothGrad noise comes
    from ``Generator(seed + i)``, so results do not depend on batching or resumption.
    ``limit``: only a seeded random subset of that many images (the same for every model)."""
    device = torch.device(device)
    if images_per_pass is None:
        images_per_pass = 16 if device.type == "cuda" else 1
    done = scores.load()
    ids = [s.id or str(s.image) for s in dataset.samples]
    todo = [i for i in chosen_indices(len(dataset), limit, seed) if ids[i] not in done]
    model = model.to(device)
    reference = reference_embedding(model.eval(), recipe, device)
    bar = progress_bar(len(todo), f"attention {scores.path.stem}", unit="img", enabled=progress)
    # frozen once for the whole job: each smoothgrad_maps call then finds the weights ready
    with frozen(model):
        for start in range(0, len(todo), images_per_pass):
            chunk = todo[start : start + images_per_pass]
            items = [dataset[i] for i in chunk]
            chunk_scores = attention_scores(
                model,
                torch.stack([x for x, _, _ in items]),
                torch.stack([m for _, m, _ in items]),
                distance=distance,
                reference=reference,
                seed=[seed + i for i in chunk],
                batch_size=images_per_pass,
            )
            rows = [(ids[i], float(v)) for i, v in zip(chunk, chunk_scores, strict=True)]
            scores.append(rows)
            done.update(rows)
            bar.update(len(chunk))
    bar.close()
    return done


def chosen_indices(size: int, limit: int | None, seed: int) -> list[int]:
    """All indices, or a seeded random ``limit`` of them in ascending order."""
    if limit is None or limit >= size:
        return list(range(size))
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:limit].tolist())


@dataclass
class ScoredModel:
    embedder: Embedder
    key: str
    dataset: MaskedImageDataset
    data: dict[str, Any]  # dataset name, root, split


def model_key(embedder: Embedder) -> str:
    """A file-name-safe key naming the model: readable part + hash of its identity."""
    identity = embedder.details.get("checkpoint") or embedder.spec
    readable = (
        Path(identity).parent.parent.name + "-" + Path(identity).stem
        if (embedder.form == "checkpoint")
        else embedder.spec
    )
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", readable).strip("_")[:60] or "model"
    return f"{slug}-{hashlib.sha1(str(identity).encode()).hexdigest()[:8]}"


def score_models(
    models: Sequence[str | Embedder],
    out: str | os.PathLike,
    dataset: str | None = None,
    root: str | os.PathLike | None = None,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    images_per_pass: int | None = None,
    device: str = "auto",
    figures: int = 0,
    options: AdapterOptions | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Score every model on its test split (its training dataset, or ``dataset``/``root``);
    write ``OUT/<key>.csv``, ``summary.{json,md,tex}`` and with ``figures`` K ``attribution.png``
    (K images, each model's map). Returns the summary, keyed like the files."""
    from .report import attention_table, attribution_figure

    if not models:
        raise ConfigError("name at least one model (a checkpoint or a backbone)")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    out = check_output(out, "attention")  # before the models load; claimed once they have
    torch_device = resolve_device(device)
    scored = [_prepare(m, dataset, root, split, options) for m in models]
    keys = [s.key for s in scored]
    for key in {k for k in keys if keys.count(k) > 1}:
        same = [s.embedder.spec for s in scored if s.key == key]
        raise ConfigError(f"{' and '.join(same)} are the same model (one output {key})")
    claim_output(out, "attention")
    lock = lock_folder(out, "attention", leftovers=LEFTOVERS)
    try:
        summaries = {}
        for item in scored:
            meta = {
                "model": item.embedder.describe(),
                "data": item.data,
                "seed": seed,
                "limit": limit,
                "samples": SAMPLES,
                "noise_level": NOISE_LEVEL,
            }
            scores = score_dataset(
                item.embedder.module,
                item.embedder.recipe,
                item.embedder.distance,
                item.dataset,
                ScoreFile(out, item.key, meta),
                seed=seed,
                images_per_pass=images_per_pass,
                device=torch_device,
                limit=limit,
                progress=progress,
            )
            run = item.embedder.details  # a bgbias run's preset, loss and mode (for reports)
            summaries[item.key] = {
                "label": item.embedder.label,
                "model": item.embedder.spec,
                **{k: run[k] for k in ("preset", "loss", "mode") if k in run},
                **item.data,
                **summarize_scores(scores),
                "scores": str(out / f"{item.key}.csv"),
            }
        labels = _unique_labels(summaries)
        rows = {labels[k]: s for k, s in summaries.items()}
        write_json(out / "summary.json", summaries)
        write_text(out / "summary.md", attention_table(rows, "md"))
        write_text(out / "summary.tex", attention_table(rows, "latex"))
        if figures:
            images, maps, figure_scores = figure_maps(scored, labels, figures, seed, torch_device)
            attribution_figure(images, maps, figure_scores, out / "attribution.png")
        return summaries
    finally:
        lock.release()


def _prepare(model, dataset, root, split, options) -> ScoredModel:
    embedder = model if isinstance(model, Embedder) else load_embedder(model, options)
    if embedder.module is None:
        raise ConfigError(
            f"{embedder.spec}: attention scores need gradients; a {embedder.form} model "
            "cannot be differentiated by bgbias (use its PyTorch form)"
        )
    config = embedder.config
    name = dataset or (config.data.dataset if config is not None else None)
    folder = root or (config.data.root if config is not None else None)
    if name is None or folder is None:
        raise ConfigError(f"{embedder.spec}: not a bgbias checkpoint; pass --dataset and --root")
    test_set = open_split(
        name,
        folder,
        split,
        PairedTransform(embedder.recipe, False),
        require_masks=True,
        check_sizes=config.data.check_sizes if config is not None else True,
    )
    data = {"dataset": name, "root": str(Path(folder).resolve()), "split": split}
    return ScoredModel(embedder, model_key(embedder), test_set, data)


def _unique_labels(summaries: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Table labels: the model's label, with its key where two models share one."""
    labels = [s["label"] for s in summaries.values()]
    return {
        key: s["label"] if labels.count(s["label"]) == 1 else f"{s['label']} [{key}]"
        for key, s in summaries.items()
    }


def figure_maps(
    scored: list[ScoredModel], labels: dict[str, str], count: int, seed: int, device
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, list[float]]]:
    """``count`` seeded random images of the first model's set, found by id in every model's
    set (all models must be scored on the same images); per model label: the images as that
    model saw them (K, 3, H, W) RGB, its maps (K, H, W) and its scores."""
    first = scored[0].dataset
    picks = chosen_indices(len(first), count, seed)
    wanted = [first.samples[i].id for i in picks]
    images, maps, scores = {}, {}, {}
    for item in scored:
        positions = {s.id: i for i, s in enumerate(item.dataset.samples)}
        missing = [w for w in wanted if w not in positions]
        if missing:
            raise ConfigError(
                f"figures need every model scored on the same images; {item.embedder.spec} "
                f"has no {missing[0]!r} in {item.data['root']}"
            )
        chosen = [positions[w] for w in wanted]
        items = [item.dataset[i] for i in chosen]
        batch = torch.stack([x for x, _, _ in items])
        model = item.embedder.module.to(device)
        label = labels[item.key]
        maps[label], figure_scores = attention_maps(
            model.eval(),
            batch,
            torch.stack([m for _, m, _ in items]),
            distance=item.embedder.distance,
            recipe=item.embedder.recipe,
            seed=[seed + i for i in chosen],
        )
        scores[label] = figure_scores.tolist()
        images[label] = item.embedder.recipe.normalization.inverse(batch)
    if any(math.isnan(v) for values in scores.values() for v in values):
        log.info("some figure images have undefined attention scores (empty or full masks)")
    return images, maps, scores
