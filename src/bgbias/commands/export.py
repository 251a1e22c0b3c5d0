"""`bgbias export`: an embedding model as ONNX or TorchScript, its preprocessing inside."""

from __future__ import annotations

from ._common import (
    RegistryChoice,
    adapter_options,
    add_command,
    add_model_options,
    int_at_least,
    registry_names,
)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "export",
        help="export an embedding model to ONNX or TorchScript (preprocessing in the file)",
        description="Write MODEL as OUT: input 'images' (batch, 3, crop, crop) normalised by "
        "the model's recipe, output 'embeddings' (batch, D), any batch size. The recipe and the "
        "source checkpoint's sha256 go into the file's metadata (ONNX metadata_props, "
        "TorchScript extra file bgbias.json). The file is checked against PyTorch before it is "
        "written.",
    )
    parser.add_argument(
        "model", help="a bgbias checkpoint, or any model form with a PyTorch module"
    )
    add_model_options(parser)
    parser.add_argument("out", help="output file (.onnx, or .pt/.ts for TorchScript)")
    parser.add_argument(
        "--format",
        action=RegistryChoice,
        names=registry_names("bgbias.export.EXPORT_FORMATS"),
        listed_by="bgbias list export-formats",
        help="file format (default: from OUT's suffix)",
    )
    parser.add_argument("--opset", type=int_at_least(11), default=17, help="ONNX opset")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..export import export_model

    report = export_model(
        args.model, args.out, format=args.format, opset=args.opset, options=adapter_options(args)
    )
    recipe = report.metadata.recipe
    print(
        f"wrote {report.path} ({report.format}, {report.bytes / 1e6:.1f} MB): "
        f"{report.metadata.embedding_size}-d embeddings, input {recipe.normalization.channels} "
        f"{recipe.crop}x{recipe.crop} (resize {recipe.resize}, recipe {recipe.name}); "
        f"max |difference| to PyTorch {report.max_difference:.1e} on {report.check_batch} images"
    )
    return 0
