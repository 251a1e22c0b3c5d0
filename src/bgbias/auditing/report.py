"""The audit's report: ``report.md`` and a self-contained ``report.html`` (the same tables,
every figure embedded as a base64 PNG: it opens offline, as one file), from the audit.json
content (verdicts included: :mod:`bgbias.auditing.verdict` computes them)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, NamedTuple

from ..io import write_text
from ..tabular import MISSING, markdown_table, mean_std
from .figures import Grid, blend_curve, condition_bars, retrieval_grid

CONDITION_TEXT = {
    "original": "the image as it is",
    "only_fg": "the object on black",
    "mixed_rand": "the object on a random background photo",
    "mixed_same": "the object on the (object-free) background of another image of its class",
    "only_bg": "the object inpainted away: only the background",
}
METRIC_TEXT = {
    "hit_at_1": "hit@1",
    "product_hit_at_1": "product hit@1",
    "mean_rank": "mean rank",
    "cosine_mean": "cosine",
    "map_at_r": "MAP@R",
    "precision_at_1": "P@1",
    "r_precision": "R-Precision",
}


def _value(entry: dict[str, Any], family: str, metric: str) -> str:
    return mean_std(
        entry.get(family, {}).get(metric),
        entry.get("std", {}).get(family, {}).get(metric),
        digits=2 if metric == "mean_rank" else 3,
        interval=entry.get(family, {}).get(f"{metric}_ci"),
    )


class Table(NamedTuple):
    """A table of the report; ``images``: for a worst-images table, (model, image id per row)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    images: tuple[str, list[str]] | None = None


def _chance(audit: dict[str, Any], condition: str, metric: str) -> str:
    """The chance level of a metric's row: hit@1's is the audit's, product hit@1's the
    condition's (the share of originals of the query's label, averaged)."""
    if metric == "hit_at_1":
        return f"{audit['chance_hit_at_1']:.3f}"
    if metric == "product_hit_at_1":
        for m in audit["models"].values():
            value = m["conditions"].get(condition, {}).get("instance", {}).get("product_chance")
            if value is not None:
                return f"{value:.3f}"
    return ""


def mask_mark(audit: dict[str, Any], image: str) -> str:
    """'suspect: empty: 0.0% foreground' for an image whose mask looks wrong, else ''."""
    problems = audit.get("suspect_masks", {}).get(image)
    return f"mask suspect: {'; '.join(problems)}" if problems else ""


def tables(audit: dict[str, Any]) -> list[Table]:
    """Every table of the report, rendered as Markdown or HTML."""
    models = audit["models"]
    labels = [m["label"] for m in models.values()]
    out = []
    chance = f"{audit['chance_hit_at_1']:.3f}"
    metrics = ("hit_at_1",) + (("product_hit_at_1",) if audit["label_metrics"] else ())
    rows = [
        [c, METRIC_TEXT[metric], _chance(audit, c, metric)]
        + [_value(m["conditions"].get(c, {}), "instance", metric) for m in models.values()]
        for c in audit["conditions"]
        if c != "original"
        for metric in (*metrics, "mean_rank", "cosine_mean")
    ]
    product = (
        "; product hit@1: the first original has the query's label (a sibling view counts)"
        if audit["label_metrics"]
        else ""
    )
    out.append(
        Table(
            "Instance metrics (query: the image's variant; gallery: every original; chance: "
            "the hit@1 of a random ranking, 1 / gallery size; [95% bootstrap interval over "
            f"images] ± std over repeats{product})",
            ["condition", "metric", "chance", *labels],
            rows,
        )
    )
    if audit["label_metrics"]:
        rows = [
            [c, protocol, METRIC_TEXT[metric]]
            + [_value(m["conditions"].get(c, {}), protocol, metric) for m in models.values()]
            for c in audit["conditions"]
            for protocol in ("symmetric", "asymmetric")
            for metric in ("map_at_r", "precision_at_1", "r_precision")
        ]
        out.append(
            Table(
                "Label metrics (symmetric: every image in the condition; asymmetric: "
                "queries in the condition, gallery the originals)",
                ["condition", "protocol", "metric", *labels],
                rows,
            )
        )
    alphas = audit["blend_alphas"]
    rows = [
        [f"{a:g}"] + [_value(m["blend"][i], "instance", "hit_at_1") for m in models.values()]
        for i, a in enumerate(alphas)
    ]
    out.append(
        Table(
            f"Blend sweep: hit@1 as the background fades to a random photo (chance {chance})",
            ["alpha", *labels],
            rows,
        )
    )
    rows = [
        ["BG-gap (MAP@R mixed_same - mixed_rand)"]
        + [MISSING if m["bg_gap"] is None else f"{m['bg_gap']:+.3f}" for m in models.values()],
        ["attention score (mean ± std)"]
        + [
            mean_std(score["mean"], score["std"], 3) if (score := m["attention_score"]) else MISSING
            for m in models.values()
        ],
    ]
    out.append(Table("Summary numbers", ["", *labels], rows))
    for spec, m in models.items():
        for condition, worst in m["worst"].items():
            order = "highest" if condition == "only_bg" else "lowest"
            rows = [
                [
                    w["image"],
                    w["class"] or "",
                    f"{w['cosine']:.3f}",
                    f"{w['hit_at_1']:.2f}",
                    f"{w['rank']:.1f}",
                    mask_mark(audit, w["image"]),
                ]
                for w in worst
            ]
            out.append(
                Table(
                    f"{m['label']}: worst images under {condition} ({order} cosine)",
                    ["image", "class", "cosine", "hit@1", "rank", "mask"],
                    rows,
                    (spec, [w["image"] for w in worst]),
                )
            )
        quartiles = m["breakdown"]["by_mask_area"].get("mixed_rand", {})
        rows = [
            [name, str(q["images"]), f"{q['hit_at_1']:.3f}", f"{q['cosine_mean']:.3f}"]
            for name, q in quartiles.items()
        ]
        out.append(
            Table(
                f"{m['label']}: mixed_rand by object size",
                ["mask-area quartile", "images", "hit@1", "cosine"],
                rows,
            )
        )
    return out


def _markdown(audit, figures: dict[str, str]) -> str:
    lines = ["# Background-reliance audit", "", _data_line(audit), "", "## Verdicts", ""]
    lines += [f"- **{m['label']}**: {m['verdict']}" for m in audit["models"].values()]
    lines += ["", "## Conditions", ""]
    lines += [f"- `{c}`: {CONDITION_TEXT[c]}" for c in audit["conditions"]]
    for title, header, rows, _ in tables(audit):
        lines += ["", f"## {title}", "", *markdown_table(header, rows)]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}](figures/{name}.png)" for name in figures]
    if audit["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in audit["notes"]]
    return "\n".join(lines) + "\n"


def _data_line(audit) -> str:
    d, p = audit["data"], audit["provenance"]
    classes = f"{d['classes']} classes" if d["classes"] else "no labels"
    return (
        f"{d['images']} images in {d['root']} ({d['layout']} layout, {classes}); masks: "
        f"{d['masks']}; backgrounds: {p['backgrounds']['source']} "
        f"({p['backgrounds']['count']} photos); {p['repeats']} repeats, seed {p['seed']}."
    )


def _data_uri(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def _html(audit, figures: dict[str, str], out: Path, grids: dict[str, Grid]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>bgbias audit</title><style>body{font-family:sans-serif;max-width:1200px;"
        "margin:2em auto;padding:0 1em}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,"
        "th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
        "<h1>Background-reliance audit</h1>",
        f"<p>{e(_data_line(audit))}</p>",
        "<h2>Verdicts</h2><ul>",
    ]
    parts += [
        f"<li><b>{e(m['label'])}</b>: {e(m['verdict'])}</li>" for m in audit["models"].values()
    ]
    parts += ["</ul><h2>Conditions</h2><ul>"]
    parts += [f"<li><code>{c}</code>: {e(CONDITION_TEXT[c])}</li>" for c in audit["conditions"]]
    parts.append("</ul>")
    for name, caption in figures.items():
        data = _data_uri((out / "figures" / f"{name}.png").read_bytes())
        parts.append(
            f"<figure><img alt='{e(name)}' src='{data}'>"
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    for title, header, rows, images in tables(audit):
        shown = images is not None and images[0] in grids
        header = [*header, "photo", "mask overlay (what the model keeps)"] if shown else header
        parts.append(
            f"<h2>{e(title)}</h2><table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in header)
            + "</tr>"
        )
        for n, row in enumerate(rows):
            cells = "".join(f"<td>{e(c)}</td>" for c in row)
            if shown:
                pair = grids[images[0]].overlays.get(images[1][n])
                cells += "".join(
                    f"<td><img alt='{what} of {e(images[1][n])}' src='{_data_uri(jpeg, 'jpeg')}'>"
                    "</td>"
                    for what, jpeg in zip(("photo", "mask overlay"), pair or (), strict=False)
                )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    if audit["notes"]:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{e(n)}</li>" for n in audit["notes"]] + ["</ul>"]
    return "\n".join(parts) + "\n</body></html>\n"


def write_reports(audit: dict[str, Any], grids: dict[str, Grid], out: Path) -> None:
    """Write figures/*.png, report.md and report.html of ``audit`` (its verdicts set) into
    folder ``out``; ``grids``: each model's retrieval grid, by model name."""
    folder = out / "figures"
    figures = {
        "conditions": "Per condition and model: hit@1 (dashed: chance) and cosine (and MAP@R "
        "with labels); error bars: std over repeats.",
        "blend": "The background faded from the original (0) to a random photo (1).",
    }
    condition_bars(audit, folder / "conditions.png")
    blend_curve(audit, folder / "blend.png")
    for n, (spec, grid) in enumerate(grids.items()):
        if not grid.rows:
            continue
        name = f"retrieval_grid_{n + 1}"
        label = audit["models"][spec]["label"]
        retrieval_grid(grid.rows, grid.gallery, folder / f"{name}.png", label)
        figures[name] = (
            f"{label}: its worst queries under mixed_rand and only_bg with their "
            "top results among the originals (dark blue frame: the query's own "
            "original, light blue: same class, orange: wrong). Under only_bg a "
            "dark blue result means the image was found from its background alone."
        )
    write_text(out / "report.md", _markdown(audit, figures))
    write_text(out / "report.html", _html(audit, figures, out, grids))
