"""``timm:<name>``: any timm model's L2-normalised pooled features, as the backbone of that name.

The model is built where a training config's ``timm:<name>`` backbone is (one path, one
spelling: :func:`bgbias.backbones.registry.backbone_spec`). ``--weights FILE`` loads a local
weight file (offline use); otherwise timm fetches its pretrained weights from the hub (or
``--untrained`` gives random ones).
"""

from __future__ import annotations

from ..backbones.registry import TIMM_PREFIX
from ..errors import BgbiasError, ConfigError
from ..models import build_model
from .base import AdapterForm, AdapterOptions, TorchEmbedder, override_recipe, register_form


def load_timm(name: str, options: AdapterOptions) -> TorchEmbedder:
    spec = f"{TIMM_PREFIX}{name}"
    pretrained = options.pretrained or bool(options.weights)
    try:
        model = build_model(spec, pretrained=pretrained, embedding_size=0, weights=options.weights)
    except BgbiasError:
        raise
    except Exception as exc:  # noqa: BLE001 - download, file and state-dict errors alike
        raise ConfigError(
            f"{spec}: could not load its weights ({type(exc).__name__}: {exc}); "
            "offline, pass --weights FILE"
        ) from None
    import timm  # imported by build_model: its version is provenance

    weights = options.weights or ("timm pretrained" if pretrained else "random")
    return TorchEmbedder(
        model,
        spec,
        "timm",
        override_recipe(model.recipe, options),
        label=spec,
        details={"timm_model": name, "weights": weights, "timm_version": timm.__version__},
    )


register_form(
    AdapterForm(
        "timm",
        load_timm,
        f"{TIMM_PREFIX}<name>",
        "a timm model's pooled features, L2-normalised (pip install bgbias[timm]; --weights "
        "FILE offline)",
        prefix=TIMM_PREFIX.rstrip(":"),
        requires=("timm",),
    )
)
