"""`bgbias list KIND`: every name bgbias knows of one kind, from its registry."""

from __future__ import annotations

from ._common import add_command, deprecated_notice


def _presets() -> list[str]:
    from ..presets import preset_names

    return preset_names()


def _described(registry_path: str, describe) -> callable:
    def entries() -> list[str]:
        import importlib

        module, name = registry_path.rsplit(".", 1)
        registry = getattr(importlib.import_module(module), name)
        return [f"{key:24} {describe(registry.get(key))}" for key in registry]

    return entries


def _model_forms() -> list[str]:
    import importlib.util

    from ..adapters import ADAPTERS

    lines = []
    for name in ADAPTERS:
        form = ADAPTERS.get(name)
        missing = [p for p in form.requires if importlib.util.find_spec(p) is None]
        note = f" [needs {', '.join(missing)}: not installed]" if missing else ""
        if form.suffixes:
            note += f" [files: {', '.join(f'*{s}' for s in form.suffixes)}]"
        lines.append(f"{form.syntax:34} {form.description}{note}")
    return lines


def _published() -> list[str]:
    from ..report.published import PUBLISHED, published

    return [f"{name:24} {published(name)[0]}" for name in PUBLISHED]


KINDS = {
    "presets": _presets,
    "losses": _described("bgbias.losses.LOSSES", lambda s: s.display_name),
    "backbones": _described("bgbias.backbones.BACKBONES", lambda s: s.description),
    "datasets": _described("bgbias.data.registry.DATASETS", lambda s: s.description),
    "recipes": _described(
        "bgbias.backbones.registry.RECIPES",
        lambda r: f"resize {r.resize}, crop {r.crop}, {r.normalization.channels}",
    ),
    "model-forms": _model_forms,
    "mask-models": _described("bgbias.masks.predictors.PREDICTORS", lambda p: ""),
    "mask-engines": _described("bgbias.masks.predictors.U2NET_ENGINES", lambda e: ""),
    "background-sets": _described(
        "bgbias.data.background_sets.BACKGROUND_SETS", lambda s: s.description
    ),
    "launchers": _described("bgbias.launch.launchers.LAUNCHERS", lambda s: s.description),
    "index-types": _described("bgbias.search.index.INDEX_TYPES", lambda t: t.description),
    "export-formats": _described("bgbias.export.EXPORT_FORMATS", lambda f: ", ".join(f.suffixes)),
    "published": _published,
    "fills": _described(
        "bgbias.removal.FILLS", lambda f: "the recipe's mean colour" if f.rgb is None else f.rgb
    ),
}


RENAMED_KINDS = {"models": "model-forms"}  # old -> new; the old ones work with a notice


class _Renamed(str):
    """A kind given by its old name: the new one, remembering the old for the notice."""

    old: str


def _kind(value: str) -> str:
    """argparse's type (applied before the choices check): an old name becomes the new."""
    if value not in RENAMED_KINDS:
        return value
    renamed = _Renamed(RENAMED_KINDS[value])
    renamed.old = value
    return renamed


def register(subparsers) -> None:
    parser = add_command(subparsers, "list", help="names bgbias knows: presets, losses, ...")
    parser.add_argument("kind", type=_kind, choices=list(KINDS), help="what to list")
    parser.set_defaults(func=run)


def run(args) -> int:
    if isinstance(args.kind, _Renamed):
        deprecated_notice(f"list {args.kind.old}", f"list {args.kind}")
    print("\n".join(line.rstrip() for line in KINDS[args.kind]()))
    return 0
