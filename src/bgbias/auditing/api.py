"""``bgbias.audit(models, images, ...) -> AuditResult``: how much any embedding model relies on
backgrounds, on any image folder, from Python (``bgbias audit`` is a thin caller of it)::

    result = bgbias.audit(model, "photos/", masks="photo-masks/", input_size=224)
    result.models["MyNet"].conditions["mixed_rand"].hit_at_1   # 0.94
    result.verdicts["MyNet"].level                            # "High"
    result.save("audit-out")            # audit.json, report.md, report.html, figures/

The audit is planned (every input checked, models loaded: :mod:`.plan`) before it computes
anything (:mod:`.compute`), and nothing is written until :meth:`AuditResult.save`.
"""

from __future__ import annotations

import copy
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..adapters import AdapterOptions
from ..outputs import claim_output
from ..tabular import MISSING, mean_std
from .compute import compute_audit
from .figures import Grid
from .models import ModelLike, as_embedders, restored, three_numbers
from .plan import AuditConfig, plan_audit
from .save import prepare_out, save_audit
from .verdict import Verdict


@dataclass(frozen=True)
class ConditionMetrics:
    """One model's numbers under one condition (means over repeats; None where a metric does
    not apply: no instance metrics for ``original``, no MAP@R without labels)."""

    condition: str
    images: int  # queries: the images the condition covers
    repeats: int  # draws (mixed_rand, mixed_same), else 1
    hit_at_1: float | None  # share of queries whose own original is retrieved first
    hit_at_1_std: float | None  # over repeats
    hit_at_1_ci: tuple[float, float] | None  # 95% percentile bootstrap interval over images
    chance: float  # hit@1 of a random ranking: 1 / gallery size (the gallery: every original)
    product_hit_at_1: float | None  # with labels: the first original has the query's label
    product_hit_at_1_ci: tuple[float, float] | None
    product_chance: float | None  # product hit@1 of a random ranking
    mean_rank: float | None  # of the query's own original among all originals
    cosine_mean: float | None  # cosine similarity of each original and its variant
    map_at_r: float | None  # symmetric MAP@R (every image in the condition), with labels
    map_at_r_asymmetric: float | None  # queries in the condition, gallery the originals


@dataclass(frozen=True)
class ModelAudit:
    """One model's audit: ``conditions`` by name (see ``result.conditions``), the blend sweep
    ``(alpha, hit@1)`` from the original background (0) to a random photo (1), BG-gap (MAP@R
    mixed_same - mixed_rand, with labels), mean attention score (when computed), verdict."""

    name: str  # the key in audit.json's "models"
    label: str  # as the report shows it
    conditions: Mapping[str, ConditionMetrics]
    blend: tuple[tuple[float, float], ...]
    bg_gap: float | None
    attention_score: float | None
    verdict: Verdict


def _pair(value: list[float] | None) -> tuple[float, float] | None:
    return None if value is None else (value[0], value[1])


def _condition(name: str, entry: dict[str, Any], chance: float) -> ConditionMetrics:
    instance = entry.get("instance", {})
    return ConditionMetrics(
        condition=name,
        images=entry["images"],
        repeats=entry.get("repeats", 1),
        hit_at_1=instance.get("hit_at_1"),
        hit_at_1_std=entry.get("std", {}).get("instance", {}).get("hit_at_1"),
        hit_at_1_ci=_pair(instance.get("hit_at_1_ci")),
        chance=chance,
        product_hit_at_1=instance.get("product_hit_at_1"),
        product_hit_at_1_ci=_pair(instance.get("product_hit_at_1_ci")),
        product_chance=instance.get("product_chance"),
        mean_rank=instance.get("mean_rank"),
        cosine_mean=instance.get("cosine_mean"),
        map_at_r=entry.get("symmetric", {}).get("map_at_r"),
        map_at_r_asymmetric=entry.get("asymmetric", {}).get("map_at_r"),
    )


class AuditResult:
    """Every number of an audit: ``models`` (name -> :class:`ModelAudit`), ``verdicts``,
    ``notes``; :meth:`to_dict` is the audit.json content, :meth:`save` writes the report."""

    def __init__(self, audit: dict[str, Any], grids: Mapping[str, Grid]):
        self._audit = audit
        self._grids = dict(grids)
        chance = audit["chance_hit_at_1"]
        self.chance: float = chance
        self.conditions: list[str] = list(audit["conditions"])
        self.notes: list[str] = list(audit["notes"])
        # image id -> its mask's problems ("empty: 0.0% foreground", ...)
        self.suspect_masks: dict[str, list[str]] = dict(audit.get("suspect_masks", {}))
        self.models: dict[str, ModelAudit] = {
            name: ModelAudit(
                name=name,
                label=m["label"],
                conditions={c: _condition(c, e, chance) for c, e in m["conditions"].items()},
                blend=tuple((b["alpha"], b["instance"]["hit_at_1"]) for b in m["blend"]),
                bg_gap=m["bg_gap"],
                attention_score=(m["attention_score"] or {}).get("mean"),
                verdict=Verdict(m["verdict_level"], m["verdict"]),
            )
            for name, m in audit["models"].items()
        }

    @property
    def verdicts(self) -> dict[str, Verdict]:
        """Model name -> its verdict (``.level``: Low, Moderate, High or Insufficient: intervals
        that span two levels; ``.sentence``)."""
        return {name: m.verdict for name, m in self.models.items()}

    @property
    def images(self) -> int:
        return self._audit["data"]["images"]

    def to_dict(self) -> dict[str, Any]:
        """The audit.json content, exactly as :meth:`save` writes it (JSON types: lists, not
        tuples), as a new copy: every number and its provenance."""
        return json.loads(json.dumps(self._audit))

    def save(self, out: str | os.PathLike) -> Path:
        """Write OUT/audit.json, report.md, report.html and figures/, replacing a previous
        audit's only once all are written (audit.json last); returns OUT."""
        return save_audit(self._audit, self._grids, out)

    def __repr__(self) -> str:
        levels = ", ".join(f"{n}: {v.level}" for n, v in self.verdicts.items())
        return f"AuditResult({self.images} images; {levels})"

    def _repr_html_(self) -> str:
        """A compact table for Jupyter: hit@1 per condition (chance beside), BG-gap, verdict."""
        e = html.escape
        shown = [c for c in self.conditions if c != "original"]
        head = "".join(f"<th>{e(c)} hit@1</th>" for c in shown)
        rows = []
        for m in self.models.values():
            cells = []
            for c in shown:
                metric = m.conditions.get(c)
                value = (
                    MISSING
                    if metric is None
                    else mean_std(
                        metric.hit_at_1, metric.hit_at_1_std, 3, interval=metric.hit_at_1_ci
                    )
                )
                if metric is not None and metric.product_hit_at_1 is not None:
                    value += f"<br>product {metric.product_hit_at_1:.3f}"
                    if metric.product_hit_at_1_ci is not None:
                        lo, hi = metric.product_hit_at_1_ci
                        value += f" [{lo:.3f}, {hi:.3f}]"
                    value += f" (chance {metric.product_chance:.3f})"
                cells.append(f"<td>{value}</td>")
            gap = MISSING if m.bg_gap is None else f"{m.bg_gap:+.3f}"
            rows.append(
                f"<tr><td>{e(m.label)}</td>{''.join(cells)}<td>{gap}</td>"
                f"<td><b>{e(m.verdict.level)}</b></td></tr>"
            )
        sentences = "".join(
            f"<li><b>{e(m.label)}</b>: {e(m.verdict.sentence)}</li>" for m in self.models.values()
        )
        suspect = (
            f"<p>{len(self.suspect_masks)} suspect mask(s): "
            + e(", ".join(f"{i} ({'; '.join(p)})" for i, p in self.suspect_masks.items()))
            + "</p>"
            if self.suspect_masks
            else ""
        )
        return (
            f"<div><p>Background-reliance audit of {self.images} images (chance hit@1 "
            f"{self.chance:.3f}; [95% interval] ± std over repeats; only_bg: high = reliant)"
            f"</p><table><tr><th>model</th>{head}<th>BG-gap</th><th>verdict</th></tr>"
            f"{''.join(rows)}</table><ul>{sentences}</ul>{suspect}</div>"
        )


def run_config(config: AuditConfig, out: str | os.PathLike | None = None) -> AuditResult:
    """Plan, then compute, the audit ``config`` describes; the users' modules are given back
    as they were (device, training mode). With ``out``: OUT is checked before anything else,
    claimed (:func:`bgbias.outputs.claim_output`) only once every input is checked, made
    masks go to OUT/masks (unless ``mask_cache`` says otherwise), and the result is saved
    there."""
    if out is not None:
        out = prepare_out(out)
        if config.mask_cache is None:
            config = copy.copy(config)
            config.mask_cache = out / "masks"
    with restored(config.models):
        plan = plan_audit(config)
        if out is not None:
            claim_output(out, "audit")
        audit, grids = compute_audit(plan)
    result = AuditResult(audit, grids)
    if out is not None:
        result.save(out)
    return result


def audit(
    models: ModelLike | tuple | Sequence[Any] | Mapping[str, Any],
    images: str | os.PathLike,
    *,
    masks: str | os.PathLike | None = None,
    split: str | None = None,
    image_suffix: str = "",
    mask_suffix: str = "",
    mask_model: str | None = None,
    mask_cache: str | os.PathLike | None = None,
    backgrounds: str | os.PathLike | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_pct: float | None = None,
    weights: str | None = None,
    pretrained: bool = True,
    repeats: int = 5,
    blend_steps: int = 5,
    attention: int = 0,
    worst: int = 8,
    exclude_suspect_masks: bool = False,
    grid_queries: int = 4,
    top_k: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    progress: bool = True,
    out: str | os.PathLike | None = None,
) -> AuditResult:
    """Audit ``models`` on the images under ``images``; nothing is written (but masks that
    ``mask_model`` makes, cached) until ``.save(out)``, or, with ``out``, until every input is
    checked (then OUT is claimed, made masks go to OUT/masks and the result is saved there).

    ``models``: one model, a list, or a dict name -> model. A model is a name in any form
    ``bgbias list model-forms`` shows (``"efficientnet_lite0"``, ``"onnx:model.onnx"``, a
    checkpoint...), an ``nn.Module`` or a callable mapping normalised (B, 3, H, W) images to
    (B, D) embeddings (a callable gets no attention score: bgbias cannot differentiate it),
    or a ready ``bgbias.adapters.Embedder``; any of them as ``(model, preprocessing)``.
    Preprocessing (0-1 units, RGB, as timm's data config): ``input_size``, ``mean``, ``std``
    apply to every model (for names they override what the model says), ``crop_pct`` (resize
    the shorter side to input_size / crop_pct, then centre crop; default 0.875) to modules and
    callables; a model's own preprocessing dict wins. Defaults: 224 px, ImageNet mean/std.

    ``images``: a bgbias dataset folder, a ROOT/<class>/<image> tree, or a flat folder (no
    labels); the other options are ``bgbias audit``'s (``bgbias audit --help``, docs/audit.md).
    Images whose mask looks wrong (:mod:`bgbias.data.mask_sanity`) are audited and marked
    (``result.suspect_masks``); ``exclude_suspect_masks=True`` leaves them out instead.
    """
    defaults = {"input_size": input_size, "mean": mean, "std": std, "crop_pct": crop_pct}
    options = AdapterOptions(
        weights=weights,
        pretrained=pretrained,
        input_size=input_size,
        mean=None if mean is None else three_numbers("mean", mean),
        std=None if std is None else three_numbers("std", std),
    )
    config = AuditConfig(
        models=as_embedders(models, defaults, options),
        images=images,
        split=split,
        masks=masks,
        image_suffix=image_suffix,
        mask_suffix=mask_suffix,
        mask_model=mask_model,
        mask_cache=mask_cache,
        backgrounds=backgrounds,
        repeats=repeats,
        blend_steps=blend_steps,
        attention=attention,
        worst=worst,
        exclude_suspect_masks=exclude_suspect_masks,
        grid_queries=grid_queries,
        top_k=top_k,
        seed=seed,
        batch_size=batch_size,
        device=device,
        options=options,
        progress=progress,
    )
    return run_config(config, out)


def run_audit(config: AuditConfig) -> dict[str, Any]:
    """``config``'s audit saved to ``config.out`` (checked first, claimed once every input is
    checked; made masks of a folder without its own go to OUT/masks); returns the audit.json
    content."""
    return run_config(config, config.out).to_dict()


__all__ = ["AuditResult", "ConditionMetrics", "ModelAudit", "audit", "run_audit"]
