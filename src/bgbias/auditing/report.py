"""The audit's report: ``report.md`` and a self-contained ``report.html`` (the same tables,
every figure embedded as a base64 PNG: it opens offline, as one file), from the audit.json
content (verdicts included: :mod:`bgbias.auditing.verdict` computes them)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ..io import write_text
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
    "mean_rank": "mean rank",
    "cosine_mean": "cosine",
    "map_at_r": "MAP@R",
    "precision_at_1": "P@1",
    "r_precision": "R-Precision",
}


def _value(entry: dict[str, Any], family: str, metric: str) -> str:
    value = entry.get(family, {}).get(metric)
    if value is None:
        return "–"
    std = entry.get("std", {}).get(family, {}).get(metric)
    digits = 2 if metric == "mean_rank" else 3
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def tables(audit: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table of the report: (title, header, rows), rendered as Markdown or HTML."""
    models = audit["models"]
    labels = [m["label"] for m in models.values()]
    out = []
    chance = f"{audit['chance_hit_at_1']:.3f}"
    rows = [
        [c, METRIC_TEXT[metric], chance if metric == "hit_at_1" else ""]
        + [_value(m["conditions"].get(c, {}), "instance", metric) for m in models.values()]
        for c in audit["conditions"]
        if c != "original"
        for metric in ("hit_at_1", "mean_rank", "cosine_mean")
    ]
    out.append(
        (
            "Instance metrics (query: the image's variant; gallery: every original; chance: "
            "the hit@1 of a random ranking, 1 / gallery size)",
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
            (
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
        (
            f"Blend sweep: hit@1 as the background fades to a random photo (chance {chance})",
            ["alpha", *labels],
            rows,
        )
    )
    rows = [
        ["BG-gap (MAP@R mixed_same - mixed_rand)"]
        + ["–" if m["bg_gap"] is None else f"{m['bg_gap']:+.3f}" for m in models.values()],
        ["attention score (mean ± std)"]
        + [
            "–"
            if not m["attention_score"]
            else f"{m['attention_score']['mean']:.3f} ± {m['attention_score']['std']:.3f}"
            for m in models.values()
        ],
    ]
    out.append(("Summary numbers", ["", *labels], rows))
    for _spec, m in models.items():
        for condition, worst in m["worst"].items():
            order = "highest" if condition == "only_bg" else "lowest"
            rows = [
                [
                    w["image"],
                    w["class"] or "",
                    f"{w['cosine']:.3f}",
                    f"{w['hit_at_1']:.2f}",
                    f"{w['rank']:.1f}",
                ]
                for w in worst
            ]
            out.append(
                (
                    f"{m['label']}: worst images under {condition} ({order} cosine)",
                    ["image", "class", "cosine", "hit@1", "rank"],
                    rows,
                )
            )
        quartiles = m["breakdown"]["by_mask_area"].get("mixed_rand", {})
        rows = [
            [name, str(q["images"]), f"{q['hit_at_1']:.3f}", f"{q['cosine_mean']:.3f}"]
            for name, q in quartiles.items()
        ]
        out.append(
            (
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
    for title, header, rows in tables(audit):
        lines += [
            "",
            f"## {title}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
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


def _html(audit, figures: dict[str, str], out: Path) -> str:
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
        data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    for title, header, rows in tables(audit):
        parts.append(
            f"<h2>{e(title)}</h2><table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in header)
            + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
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
            "top results among the originals (green frame: the query's own "
            "original, light green: same class, red: wrong). Under only_bg a "
            "green result means the image was found from its background alone."
        )
    write_text(out / "report.md", _markdown(audit, figures))
    write_text(out / "report.html", _html(audit, figures, out))
