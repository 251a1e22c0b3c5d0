"""``timm:<name>``: any timm model's pooled features, preprocessing from timm's data config.

``--weights FILE`` loads a local weight file (offline use); otherwise timm fetches its pretrained
weights from the hub (or ``--untrained`` gives random ones).
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import (
    AdapterForm,
    AdapterOptions,
    TorchEmbedder,
    external_recipe,
    missing_package,
    register_form,
)


def load_timm(name: str, options: AdapterOptions) -> TorchEmbedder:
    try:
        import timm
        import timm.data
    except Exception as exc:  # noqa: BLE001 - a broken torchvision raises RuntimeError too
        raise missing_package("timm:<name>", "timm", "timm", exc) from None
    if not timm.is_model(name):
        raise ConfigError(f"timm:{name}: timm has no model {name!r} (see timm.list_models())")
    pretrained = options.pretrained or bool(options.weights)
    overlay = {"pretrained_cfg_overlay": {"file": options.weights}} if options.weights else {}
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, **overlay)
    except Exception as exc:  # noqa: BLE001 - download, file and state-dict errors alike
        raise ConfigError(
            f"timm:{name}: could not load its weights ({type(exc).__name__}: {exc}); "
            "offline, pass --weights FILE"
        ) from None
    data = timm.data.resolve_model_data_config(model)
    recipe = external_recipe(
        f"timm:{name}",
        options,
        input_size=int(data["input_size"][-1]),
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
        crop_pct=float(data.get("crop_pct") or 0.875),
    )
    weights = options.weights or ("timm pretrained" if pretrained else "random")
    return TorchEmbedder(
        model,
        f"timm:{name}",
        "timm",
        recipe,
        label=f"timm:{name}",
        details={"timm_model": name, "weights": weights, "timm_version": timm.__version__},
    )


register_form(
    AdapterForm(
        "timm",
        load_timm,
        "timm:<name>",
        "a timm model's pooled features (pip install bgbias[timm]; --weights FILE offline)",
        prefix="timm",
        requires=("timm",),
    )
)
