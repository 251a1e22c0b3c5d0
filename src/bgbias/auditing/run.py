"""`bgbias audit`: how much any embedding model relies on backgrounds, on any image folder.

One pass: the images are found and decoded once (masks found or made), the conditions are made
per batch on the model's device and embedded, then every number, the report and its figures
are written to OUT. Results are written only at the end, ``audit.json`` last; a failed run
leaves no report (the previous one is moved away first), so nothing partial looks complete.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.distances import CosineSimilarity

from .. import __version__
from ..adapters import AdapterOptions, Embedder, load_embedder
from ..attention import chosen_indices
from ..attribution import attention_scores, summarize_scores
from ..data.backgrounds import BackgroundBank, load_banks
from ..devices import resolve_device
from ..errors import ConfigError
from ..io import ensure_writable_dir, lock_folder, remove_tree, write_json
from ..progress import progress_bar
from .conditions import CONDITIONS, ConditionMaker, blend_alphas
from .images import ImageSet, Pixels, decode, find_images, inpaint_objects, make_missing_masks
from .metrics import similarity
from .score import Embedded, score_model

log = logging.getLogger(__name__)
OUTPUTS = ("audit.json", "report.md", "report.html", "figures")
GRID_CONDITIONS = ("mixed_rand", "only_bg")
PACKAGES = (
    "torch",
    "numpy",
    "pillow",
    "pytorch-metric-learning",
    "faiss-cpu",
    "onnxruntime",
    "opencv-python-headless",
    "transformers",
    "timm",
    "open-clip-torch",
)


@dataclass
class AuditConfig:
    """What to audit and how; see ``bgbias audit --help`` for each option."""

    models: list[str | Embedder]
    images: str | os.PathLike
    out: str | os.PathLike = "audit"
    split: str | None = None
    masks: str | os.PathLike | None = None
    image_suffix: str = ""
    mask_suffix: str = ""
    mask_model: str | None = None
    backgrounds: str | None = None  # photo folder (its test/ if it has one) or procedural
    repeats: int = 5
    blend_steps: int = 5
    attention: int = 0  # images whose attention score is computed, per differentiable model
    worst: int = 8
    grid_queries: int = 4
    top_k: int = 5
    seed: int = 0
    batch_size: int = 64
    device: str = "auto"
    options: AdapterOptions = field(default_factory=AdapterOptions)
    progress: bool = True


def load_bank(source: str | None, short_side: int) -> BackgroundBank:
    """``mixed_rand``'s backgrounds: a folder's ``test/`` photos (or the folder's own), or the
    procedural test bank (the one bgbias evaluations use: disjoint from BGAugment's)."""
    if source is None or str(source) == "procedural":
        return load_banks(None, short_side, splits=("test",))["test"]
    folder = Path(source)
    return BackgroundBank.from_folder(
        folder / "test" if (folder / "test").is_dir() else folder, short_side
    )


def usable_labels(images: ImageSet) -> tuple[np.ndarray | None, list[str]]:
    """The labels when label metrics make sense (2+ classes with 2+ images), and notes."""
    labels = images.labels
    if labels is None:
        return None, [f"{images.layout} folder: no labels, instance metrics only"]
    counts = np.bincount(labels)
    usable = int((counts >= 2).sum())
    if usable < 2:
        return None, [
            f"too few images per class for label metrics ({usable} of {len(counts)} classes "
            "have 2+ images; 2 such classes needed): instance metrics only"
        ]
    alone = int((counts == 1).sum())
    notes = (
        [
            f"{alone} class(es) with a single image: not queries in label metrics, no "
            "mixed_same for them"
        ]
        if alone
        else []
    )
    return labels, notes


def embed_variants(
    embedder: Embedder, maker: ConditionMaker, batch_size: int, progress: bool
) -> tuple[Embedded, int]:
    """Every variant of every image embedded, batch by batch; and the images embedded."""
    n = len(maker.pixels.images)
    vectors, rows_of = defaultdict(list), defaultdict(list)
    embedded_images = 0
    bar = progress_bar(n, f"auditing {embedder.label}", unit="img", enabled=progress)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = torch.arange(start, min(n, start + batch_size))
            for variant, batch in maker.make(rows, embedder.device):
                vectors[variant.key].append(embedder(batch).cpu())
                rows_of[variant.key].append(maker.rows_of(variant, rows))
                embedded_images += len(batch)
            bar.update(len(rows))
    bar.close()
    return Embedded(
        {k: torch.cat(v) for k, v in vectors.items()}, {k: torch.cat(v) for k, v in rows_of.items()}
    ), embedded_images


def attention_summary(
    embedder: Embedder, pixels: Pixels, ids: list[str], count: int, seed: int
) -> dict[str, Any] | None:
    """The attention score (PAPER.md section 7) of ``count`` seeded images' originals."""
    if count <= 0 or embedder.module is None:
        return None
    chosen = chosen_indices(len(ids), count, seed)
    rgb = pixels.images[chosen].float().div(255.0)
    values = attention_scores(
        embedder.module.eval(),
        embedder.recipe.normalization(rgb),
        pixels.masks[chosen].float().div(255.0),
        distance=embedder.distance,
        recipe=embedder.recipe,
        seed=[seed + i for i in chosen],
    )
    return summarize_scores({ids[i]: float(v) for i, v in zip(chosen, values, strict=True)})


def grid_rows(
    embedded: Embedded,
    maker: ConditionMaker,
    worst: dict[str, list[dict]],
    labels: np.ndarray | None,
    ids: list[str],
    count: int,
    top_k: int,
    distance: str,
) -> dict[str, list[dict[str, Any]]]:
    """For the ``count`` worst images under each grid condition: the query as the model saw it
    (RGB (3, C, C) in [0, 1], the condition's first draw) and its top-k originals, each
    marked ``own`` (the query's original), ``class`` (same class) or ``wrong``."""
    out = {}
    for condition in GRID_CONDITIONS:
        cosine = {w["index"]: w["cosine"] for w in worst.get(condition, [])}
        picks = list(cosine)[:count]
        if not picks:
            continue
        key = f"{condition}#0" if f"{condition}#0" in embedded.vectors else condition
        position = {int(r): i for i, r in enumerate(embedded.rows[key])}
        rows = torch.tensor(sorted(picks))
        shown = {}
        for _, batch in maker.make(rows, torch.device("cpu"), only={key}):
            shown = dict(zip(rows.tolist(), maker.recipe.normalization.inverse(batch), strict=True))
        entries = []
        for i in picks:
            query = embedded.vectors[key][position[i]][None]
            scores = similarity(query, embedded.originals, distance)[0]
            top = torch.topk(scores, min(top_k, len(scores))).indices.tolist()
            marks = [
                "own"
                if j == i
                else "class"
                if labels is not None and labels[j] == labels[i]
                else "wrong"
                for j in top
            ]
            entries.append(
                {
                    "index": i,
                    "image": ids[i],
                    "cosine": cosine[i],
                    "query": shown[i].clamp(0, 1),
                    "results": top,
                    "marks": marks,
                }
            )
        out[condition] = entries
    return out


def provenance(config: AuditConfig, banks: dict[int, BackgroundBank]) -> dict[str, Any]:
    versions = {"bgbias": __version__, "python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    bank = next(iter(banks.values()))
    return {
        "backgrounds": {"source": bank.source, "count": len(bank), "short_sides": sorted(banks)},
        "seed": config.seed,
        "seeds": {
            "mixed_rand": "seed + repeat",
            "mixed_same": "seed + 7919 + repeat",
            "attention": "seed + image index",
        },
        "repeats": config.repeats,
        "packages": versions,
        "platform": platform.platform(),
    }


def run_audit(config: AuditConfig) -> dict[str, Any]:
    """Audit every model on the images; write OUT/audit.json, report.md, report.html and
    figures/; return the audit.json content."""
    from .report import write_reports

    started = time.perf_counter()
    if not config.models:
        raise ConfigError("name at least one model (`bgbias list models` shows the forms)")
    if config.repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {config.repeats}")
    out = ensure_writable_dir(config.out)
    lock = lock_folder(out, "audit")
    try:
        for name in OUTPUTS:  # an old report must not pass for this run's
            remove_tree(out / name)
        embedders = [
            m if isinstance(m, Embedder) else load_embedder(m, config.options)
            for m in config.models
        ]
        specs = [e.spec for e in embedders]
        if len(set(specs)) != len(specs):
            raise ConfigError(f"a model is named twice: {', '.join(specs)}")
        device = resolve_device(config.device)
        for embedder in embedders:
            embedder.to(device)
        images = find_images(
            config.images, config.split, config.masks, config.image_suffix, config.mask_suffix
        )
        cache = (images.root / "masks") if images.layout == "bgbias" else out / "masks"
        images = make_missing_masks(images, config.mask_model, cache, str(device))
        labels, notes = usable_labels(images)
        ids = [item.id for item in images.items]
        class_names = images.classes if labels is not None else None
        log.info(
            "auditing %d model(s) on %d images of %s", len(embedders), len(images), images.root
        )
        geometries = {(e.recipe.resize, e.recipe.crop) for e in embedders}
        banks = {resize: load_bank(config.backgrounds, resize) for resize, _ in geometries}
        pixels = decode(images, geometries)
        for p in pixels.values():
            p.backgrounds = inpaint_objects(p)
        alphas = blend_alphas(config.blend_steps)
        models, grids, embedded_total = {}, {}, 0
        for embedder in embedders:
            geometry = pixels[(embedder.recipe.resize, embedder.recipe.crop)]
            maker = ConditionMaker(
                geometry,
                embedder.recipe,
                banks[geometry.resize],
                labels,
                config.repeats,
                alphas,
                config.seed,
            )
            embedded, count = embed_variants(embedder, maker, config.batch_size, config.progress)
            embedded_total += count
            distance = "cosine" if isinstance(embedder.distance, CosineSimilarity) else "euclidean"
            result = score_model(
                embedded,
                labels,
                class_names,
                ids,
                geometry.mask_area,
                alphas,
                distance,
                config.worst,
            )
            attention = attention_summary(embedder, geometry, ids, config.attention, config.seed)
            if config.attention and attention is None:
                notes.append(
                    f"{embedder.spec}: no attention score ({embedder.form} models "
                    "cannot be differentiated by bgbias)"
                )
            models[embedder.spec] = {
                "label": embedder.label,
                "model": embedder.describe(),
                "distance": distance,
                **result,
                "attention_score": attention,
            }
            grids[embedder.spec] = (
                grid_rows(
                    embedded,
                    maker,
                    result["worst"],
                    labels,
                    ids,
                    config.grid_queries,
                    config.top_k,
                    distance,
                ),
                geometry,
            )
        audit = {
            "models": models,
            "data": images.describe() | {"split": config.split, "mask_model": config.mask_model},
            "conditions": list(c for c in CONDITIONS if labels is not None or c != "mixed_same"),
            "blend_alphas": alphas,
            "label_metrics": labels is not None,
            "notes": notes,
            "provenance": provenance(config, banks),
            "embedded_images": embedded_total,
        }
        write_reports(audit, grids, out)  # sets each model's verdict
        audit["seconds"] = round(time.perf_counter() - started, 2)
        write_json(out / "audit.json", audit)
        return audit
    finally:
        lock.release()
