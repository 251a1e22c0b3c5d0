"""`bgbias report`: the paper's tables and a bar chart from evaluation results, or (with
--compare) bgbias's results beside the paper's published ones."""

from __future__ import annotations

from ._common import RegistryChoice, add_command, registry_names

METRICS = ("map_at_r", "precision_at_1", "r_precision")


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "report",
        help="tables and a bar chart from evaluation results (or beside the paper's)",
        description="Tables from *.eval.json files. With --compare paper: the paper's two "
        "tables (MAP@R clean and over replaced backgrounds; attention scores) with bgbias's "
        "numbers (evaluation files and attention summaries found under RESULTS), the paper's "
        "and the difference, written as OUT.md, OUT.tex, OUT.csv and OUT.png.",
    )
    parser.add_argument("results", nargs="+", help="result files or folders holding them")
    parser.add_argument(
        "--format", choices=["md", "latex", "csv"], default="md", help="printed format"
    )
    parser.add_argument("--metric", choices=METRICS, default="map_at_r", help="table metric")
    parser.add_argument(
        "--compare",
        action=RegistryChoice,
        names=registry_names("bgbias.report.published.PUBLISHED"),
        listed_by="bgbias list published",
        help="beside published results (default OUT: <first RESULTS folder>/compare-<name>)",
    )
    parser.add_argument("--out", help="also write OUT.md, OUT.tex, OUT.csv and OUT.png")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.compare:
        from ..report.write import compare_results

        _, written = compare_results(args.results, args.compare, args.out)
        print(written[0].read_text(), end="")
        print(f"wrote {', '.join(map(str, written))}")
        return 0
    from ..report import FORMATS, build_table, find_results, load_result, write_report

    table = build_table([load_result(p) for p in find_results(args.results)], args.metric)
    print(FORMATS[args.format](table), end="")
    if args.out:
        written = write_report(table, args.out)
        print(f"wrote {', '.join(map(str, written))}")
    return 0
