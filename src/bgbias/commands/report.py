"""`bgbias report`: the paper's tables and a bar chart from evaluation results."""

from __future__ import annotations

from ._common import add_command

METRICS = ("map_at_r", "precision_at_1", "r_precision")


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "report", help="tables and a bar chart from evaluation results"
    )
    parser.add_argument("results", nargs="+", help="*.eval.json files or folders holding them")
    parser.add_argument(
        "--format", choices=["md", "latex", "csv"], default="md", help="printed format"
    )
    parser.add_argument("--metric", choices=METRICS, default="map_at_r", help="table metric")
    parser.add_argument("--out", help="also write OUT.md, OUT.tex, OUT.csv and OUT.png")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..report import FORMATS, build_table, find_results, load_result, write_report

    table = build_table([load_result(p) for p in find_results(args.results)], args.metric)
    print(FORMATS[args.format](table), end="")
    if args.out:
        written = write_report(table, args.out)
        print(f"wrote {', '.join(map(str, written))}")
    return 0
