"""The LightningModule and its data: every preset builds, one step per loss, the
schedules (bgbias.training.module)."""

import lightning as L
import pytest
import torch

from bgbias.config import compose, to_dict
from bgbias.losses import LOSSES
from bgbias.presets import preset_names
from bgbias.training import EmbeddingModule, MaskedDataModule
from tests.helpers import small


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_model_loss_optimiser_and_data(name, bench, tmp_path):
    config = compose(name, small(bench, tmp_path))
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"]
    spec = LOSSES.get(config.loss.name)
    assert type(module.loss_fn) is spec.factory
    assert module.model.embedding_size == 128
    assert module.model.recipe.name == datamodule.recipe.name
    assert optimizer.param_groups[0]["lr"] == config.optimizer.lr
    assert ("lr_scheduler" in configured) == (config.optimizer.scheduler != "constant")
    if spec.classification:
        assert optimizer.param_groups[1]["lr"] == config.loss.lr
        assert optimizer.param_groups[1]["params"][0] is next(module.loss_fn.parameters())
    else:
        assert len(optimizer.param_groups) == 1
    assert (datamodule.replacer is not None) == datamodule.val_set.has_masks
    batch = next(iter(datamodule.train_dataloader()))
    assert batch[0].shape[0] == 8 and len(set(batch[2].tolist())) == 8 // datamodule.m_per_class


@pytest.mark.parametrize("loss", list(LOSSES))
def test_one_optimisation_step_per_loss(loss, bench, tmp_path):
    # the paper's preset (BN-Inception, 227 px, RMSprop, lr_loss), without the ImageNet weights
    config = compose(
        f"cub200/{loss}/bgaugment",
        small(bench, tmp_path, "data.iterations_per_epoch=1", "validate_untrained=false"),
    )
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    after = module.state_dict()
    assert not torch.equal(before["model.head.weight"], after["model.head.weight"])
    if LOSSES.get(loss).classification:
        assert not torch.equal(before["loss_fn.W"], after["loss_fn.W"])
    # BatchNorm of a from-scratch backbone learns; running statistics moved
    assert not torch.equal(
        before["model.backbone.conv1_7x7_s2_bn.running_mean"],
        after["model.backbone.conv1_7x7_s2_bn.running_mean"],
    )


def test_cosine_schedule_decays_every_group_to_zero_over_the_run():
    from bgbias.optimizers import SCHEDULERS, build_optimizer

    weights, loss_weights = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = build_optimizer("adam", [weights], 1e-3, 0.0, 0.0, [loss_weights], 1e-2)
    scheduler = SCHEDULERS.get("cosine")(optimizer, 10)
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append([group["lr"] for group in optimizer.param_groups])
    assert lrs[4] == pytest.approx([5e-4, 5e-3])
    assert lrs[-1] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert SCHEDULERS.get("constant")(optimizer, 10) is None
