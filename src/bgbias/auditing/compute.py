"""An audit's numbers from its plan: the masks made, the images decoded once, the conditions
made per batch on the model's device and embedded, every metric and verdict computed. Nothing
is written here except masks a mask model makes (into the plan's mask cache).
"""

from __future__ import annotations

import logging
import platform
import time
from collections import defaultdict
from importlib import metadata
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..adapters import Embedder
from ..attention import chosen_indices
from ..attribution import attention_scores, summarize_scores
from ..errors import DataError
from ..metrics import Distance, distance_of
from ..progress import progress_bar
from .conditions import CONDITIONS, ConditionMaker, blend_alphas
from .figures import Grid, grid_rows_for, mask_overlays
from .images import ImageSet, Pixels, decode, inpaint_objects, make_missing_masks
from .metrics import similarity
from .plan import AuditPlan, usable_labels
from .score import Embedded, score_model
from .verdict import model_verdict

log = logging.getLogger(__name__)
GRID_CONDITIONS = ("mixed_rand", "only_bg")
MIN_IMAGES = 30  # below: a note that the rates' 95% intervals are wide
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
    """The attention score (Kobs & Hotho 2022, Section 6) of ``count`` seeded images' originals."""
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
    distance: Distance,
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


def provenance(plan: AuditPlan) -> dict[str, Any]:
    versions = {"bgbias": __version__, "python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    bank = next(iter(plan.banks.values()))
    return {
        "backgrounds": {
            "source": bank.source,
            "count": len(bank),
            "short_sides": sorted(plan.banks),
        },
        "seed": plan.config.seed,
        "seeds": {
            "mixed_rand": "seed + repeat",
            "mixed_same": "seed + 7919 + repeat",
            "attention": "seed + image index",
        },
        "repeats": plan.config.repeats,
        "packages": versions,
        "platform": platform.platform(),
    }


def suspect_masks(images: ImageSet, pixels: dict[Any, Pixels]) -> dict[str, list[str]]:
    """Image id -> its mask's problems (``"code: detail"``), for every suspect mask."""
    problems = next(iter(pixels.values())).problems
    return {item.id: p for item, p in zip(images.items, problems, strict=True) if p}


def without_suspects(
    images: ImageSet, pixels: dict[Any, Pixels], suspects: dict[str, list[str]]
) -> tuple[ImageSet, dict[Any, Pixels]]:
    """The images and pixels less those whose mask is suspect; none left is an error."""
    keep = [i for i, item in enumerate(images.items) if item.id not in suspects]
    if not keep:
        raise DataError(f"{images.root}: every image's mask is suspect; nothing left to audit")
    items = [images.items[i] for i in keep]
    kept = ImageSet(images.root, images.layout, items, images.classes, images.masks)
    if kept.classes is not None:  # a class whose every image was dropped is no class
        present = {i.class_name for i in items}
        kept.classes = [c for c in kept.classes if c in present]
    return kept, {g: p.subset(keep) for g, p in pixels.items()}


def mask_notes(suspects: dict[str, list[str]], total: int, excluded: bool) -> list[str]:
    """The note on suspect masks, naming a few."""
    if not suspects:
        return []
    shown = "; ".join(f"{i} ({', '.join(p)})" for i, p in list(suspects.items())[:5])
    more = f"; and {len(suspects) - 5} more" if len(suspects) > 5 else ""
    what = (
        "left out of the audit (--exclude-suspect-masks)"
        if excluded
        else "audited but marked 'mask suspect' (their numbers may blame the model for the mask)"
    )
    return [f"{len(suspects)} of {total} masks look wrong, {what}: {shown}{more}"]


def compute_audit(plan: AuditPlan) -> tuple[dict[str, Any], dict[str, Grid]]:
    """Audit every model of ``plan``: the audit.json content (each model's verdict set) and each
    model's retrieval grid, by model name."""
    started = time.perf_counter()
    config, notes = plan.config, list(plan.notes)
    images = make_missing_masks(plan.images, config.mask_model, plan.mask_cache, str(plan.device))
    labels = plan.labels
    pixels = decode(images, plan.geometries)
    suspects = suspect_masks(images, pixels)
    notes += mask_notes(suspects, len(images), config.exclude_suspect_masks)
    if suspects and config.exclude_suspect_masks:
        before = usable_labels(images)[1]
        images, pixels = without_suspects(images, pixels, suspects)
        labels, after = usable_labels(images)
        notes = after + [n for n in notes if n not in before]  # label notes first, as planned
    ids = [item.id for item in images.items]
    class_names = images.classes if labels is not None else None
    chance = 1.0 / len(ids)  # hit@1 of a random ranking: the gallery is every original
    if len(ids) < MIN_IMAGES:
        notes.append(
            f"only {len(ids)} images (fewer than {MIN_IMAGES}): every rate's 95% interval is "
            f"wide and a random ranking finds {chance:.1%} of them from any variant; the "
            "verdict says 'not enough images' where the intervals span two levels; audit more"
        )
    log.info("auditing %d model(s) on %d images of %s", len(plan.embedders), len(ids), images.root)
    for p in pixels.values():
        p.backgrounds = inpaint_objects(p)
    alphas = blend_alphas(config.blend_steps)
    models, grids, embedded_total = {}, {}, 0
    for embedder in plan.embedders:
        embedder.to(plan.device)
        geometry = pixels[(embedder.recipe.resize, embedder.recipe.crop)]
        maker = ConditionMaker(
            geometry,
            embedder.recipe,
            plan.banks[geometry.resize],
            labels,
            config.repeats,
            alphas,
            config.seed,
        )
        embedded, count = embed_variants(embedder, maker, config.batch_size, config.progress)
        embedded_total += count
        distance = distance_of(embedder.distance)
        result = score_model(
            embedded,
            labels,
            class_names,
            ids,
            geometry.mask_area,
            alphas,
            distance,
            config.worst,
            config.seed,
        )
        attention = attention_summary(embedder, geometry, ids, config.attention, config.seed)
        if config.attention and attention is None:
            why = embedder.details.get("no_gradients") or (
                f"{embedder.form} models cannot be differentiated by bgbias"
            )
            notes.append(f"{embedder.spec}: no attention score ({why})")
        model = {
            "label": embedder.label,
            "model": embedder.describe(),
            "distance": distance,
            **result,
            "attention_score": attention,
        }
        found = model_verdict(model, chance, labels is not None)
        models[embedder.spec] = model | {"verdict": found.sentence, "verdict_level": found.level}
        entries = grid_rows(
            embedded,
            maker,
            result["worst"],
            labels,
            ids,
            config.grid_queries,
            config.top_k,
            distance,
        )
        shown = sorted({j for rows in entries.values() for e in rows for j in e["results"]})
        worst = [w["index"] for rows in result["worst"].values() for w in rows]
        grids[embedder.spec] = Grid(
            grid_rows_for(entries),
            {j: geometry.images[j].clone() for j in shown},
            mask_overlays(geometry.images, geometry.masks, worst, ids),
        )
    audit = {
        "models": models,
        "data": images.describe() | {"split": config.split, "mask_model": config.mask_model},
        "conditions": list(c for c in CONDITIONS if labels is not None or c != "mixed_same"),
        "blend_alphas": alphas,
        "label_metrics": labels is not None,
        "chance_hit_at_1": chance,
        "min_images": MIN_IMAGES,
        "suspect_masks": suspects,
        "suspect_masks_excluded": bool(suspects) and config.exclude_suspect_masks,
        "notes": notes,
        "provenance": provenance(plan),
        "embedded_images": embedded_total,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return audit, grids
