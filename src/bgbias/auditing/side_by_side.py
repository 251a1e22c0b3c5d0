"""Side-by-side retrieval: the same replaced-background queries, each model's top-k.

For ``bgbias demo`` (and anyone comparing models): K seeded random images of a labelled folder
get a random background photo (``mixed_rand``'s first draw, as the audit makes it) and are
searched among the other images' originals; each model's top-k is shown in one row, results of
the query's class framed light blue and the others orange (colour-blind safe).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..adapters import AdapterOptions, Embedder, load_embedder
from ..attention import chosen_indices
from ..errors import ConfigError
from .conditions import ConditionMaker
from .figures import comparison_grid
from .images import decode, find_images
from .metrics import similarity
from .plan import load_bank


def compare_retrievals(
    models: list[str | Embedder],
    images: str | os.PathLike,
    out: str | os.PathLike,
    split: str | None = None,
    backgrounds: str | None = None,
    queries: int = 4,
    top_k: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    options: AdapterOptions | None = None,
) -> Path:
    """Write the comparison figure to ``out`` (PNG) and return its path. Every model must
    share one preprocessing geometry (their queries are then the very same pixels)."""
    embedders = [m if isinstance(m, Embedder) else load_embedder(m, options) for m in models]
    geometries = {(e.recipe.resize, e.recipe.crop) for e in embedders}
    if len(geometries) != 1:
        raise ConfigError("the compared models must share one input size (resize and crop)")
    found = find_images(images, split)
    labels = found.labels
    if labels is None:
        raise ConfigError(f"{images}: comparing retrievals needs class labels")
    (geometry,) = geometries
    pixels = decode(found, [geometry])[geometry]
    picks = torch.tensor(chosen_indices(len(found), queries, seed))
    bank = load_bank(backgrounds, geometry[0])
    rows, marks, shown = {}, {}, None
    for embedder, label in zip(embedders, distinct_labels(embedders), strict=True):
        maker = ConditionMaker(pixels, embedder.recipe, bank, None, 1, [], seed)
        originals = []
        with torch.inference_mode():
            for start in range(0, len(found), batch_size):
                batch = torch.arange(start, min(len(found), start + batch_size))
                for _, x in maker.make(batch, embedder.device, only={"original"}):
                    originals.append(embedder(x).cpu())
            ((_, query),) = maker.make(picks, embedder.device, only={"mixed_rand#0"})
            embedded = embedder(query).cpu()
        scores = similarity(embedded, torch.cat(originals), "cosine")
        scores[torch.arange(len(picks)), picks] = -torch.inf  # not the query's own original
        top = scores.topk(min(top_k, len(found) - 1), dim=1).indices
        rows[label] = top.tolist()
        marks[label] = [
            ["class" if labels[j] == labels[i] else "wrong" for j in result]
            for i, result in zip(picks.tolist(), top.tolist(), strict=True)
        ]
        if shown is None:
            shown = embedder.recipe.normalization.inverse(query.cpu()).clamp(0, 1)
    titles = [
        f"{found.items[i].class_name}\n{Path(found.items[i].id).name}" for i in picks.tolist()
    ]
    precision = {
        label: float(np.mean([m == "class" for row in model_marks for m in row]))
        for label, model_marks in marks.items()
    }
    return comparison_grid(shown, titles, rows, marks, precision, pixels.images, Path(out))


def distinct_labels(embedders: list[Embedder]) -> list[str]:
    """The models' labels, numbered where two are the same (one figure column each)."""
    labels = [e.label for e in embedders]
    return [
        f"{label} ({labels[:i].count(label) + 1})" if labels.count(label) > 1 else label
        for i, label in enumerate(labels)
    ]
