"""train.py: every experiment runs (fast_dev_run on tiny data in the real layouts), checkpoints
rebuild their network alone, resume continues, fine-tuning replaces only the last layer, DDP
starts on CPU processes, wandb writes offline, and mistakes fail with a message naming the fix.

The AlexNet experiments keep AlexNet at 224 (a step of batch 2 is cheap on a CPU); one short
ImageNet run gives the checkpoint that the fine-tuning experiments start from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.configs import compose_job
from helpers.fixtures_labelled import (
    write_class_folders,
    write_imagenet,
    write_landmarks,
    write_rgbd,
)
from helpers.paths import ROOT

from ncl.jobs.train import run_training
from ncl.models import create_backbone
from ncl.modules.classifier import ClassifierModule

EXPERIMENTS = ["alexnet_imagenet", "alexnet_landmarks", "alexnet_rgbd", "demo_finetune"]
# tiny batches loaded in process, the metrics in a CSV file
SMALL = ["data.num_workers=0", "data.batch_size=2", "logger=csv"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Tiny copies of every layout, each at the root its data config expects."""
    root = tmp_path_factory.mktemp("data")
    write_imagenet(root / "imagenet", n_classes=3, per_class=4, val_per_class=2)
    write_landmarks(root / "landmarks")
    write_rgbd(root / "rgbd-dataset")
    write_class_folders(root / "demo" / "train", ["inst_a", "inst_b", "inst_c"], 4)
    return {"root": root}


def data_overrides(data, experiment: str) -> list[str]:
    overrides = [f"paths.data_dir={data['root']}"]
    if experiment == "alexnet_landmarks":
        overrides.append("data.layout.list_file=train.txt")
    if experiment == "alexnet_rgbd":
        overrides += ["data.layout.per_class=4", "data.layout.val_per_class=2"]
    return overrides


@pytest.fixture(scope="module")
def imagenet_run(data, tmp_path_factory) -> Path:
    """One step of experiment=alexnet_imagenet with its checkpoints (best and last)."""
    out = tmp_path_factory.mktemp("imagenet_run")
    cfg = compose_job(
        "train",
        [
            *SMALL,
            "experiment=alexnet_imagenet",
            *data_overrides(data, "alexnet_imagenet"),
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
        ],
        data_dir=data["root"],
        output_dir=out,
    )
    run_training(cfg)
    assert (out / "checkpoints" / "epoch_000.ckpt").is_file()  # the best one
    return out / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_of_every_experiment(experiment, data, imagenet_run, cfg_train):
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true"]
    if experiment in ("alexnet_landmarks", "alexnet_rgbd"):
        overrides.append(f"module.init_from={imagenet_run}")
    cfg = cfg_train([*SMALL, *overrides, *data_overrides(data, experiment)])
    run_training(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))  # a smoke test writes none


def test_checkpoint_alone_rebuilds_the_network(imagenet_run):
    module = ClassifierModule.load_from_checkpoint(imagenet_run)
    assert module.hparams["backbone"] == {"name": "alexnet", "kwargs": {}, "num_classes": 3}
    assert module.hparams["init_from"] is None
    backbone = create_backbone(str(imagenet_run))
    assert backbone.name == "alexnet" and backbone.num_classes == 3
    for (name, a), b in zip(
        module.backbone.state_dict().items(), backbone.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    checkpoint = torch.load(imagenet_run, weights_only=True)  # plain values only
    assert checkpoint["global_step"] == 1


def test_fine_tuning_replaces_only_the_last_layer(imagenet_run):
    source = create_backbone(str(imagenet_run)).state_dict()
    module = ClassifierModule(backbone="alexnet", num_classes=5, init_from=str(imagenet_run))
    tuned = module.backbone.state_dict()
    head = {f"classifier.6.{p}" for p in ("weight", "bias")}
    for key, value in source.items():
        if key in head:
            assert tuned[key].shape[0] == 5 and value.shape[0] == 3
        else:
            assert torch.equal(tuned[key], value), key
    assert module.hparams["init_from"] is None


def test_fine_tuning_refuses_a_checkpoint_of_another_network(imagenet_run):
    with pytest.raises(ValueError, match=r"module\.backbone"):
        ClassifierModule(backbone="alexnet_tv", num_classes=5, init_from=str(imagenet_run))


def test_body_learns_at_a_scaled_rate():
    module = ClassifierModule(
        backbone="alexnet",
        num_classes=2,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
        body_lr_scale=0.1,
    )
    body, head = module.configure_optimizers().param_groups
    assert body["lr"] == pytest.approx(0.001) and head["lr"] == pytest.approx(0.01)
    assert len(head["params"]) == 2


def test_resume_continues_the_global_step(data, imagenet_run, tmp_path, cfg_train):
    cfg = cfg_train(
        [
            *SMALL,
            f"paths.output_dir={tmp_path}",
            "experiment=alexnet_imagenet",
            *data_overrides(data, "alexnet_imagenet"),
            f"ckpt_path={imagenet_run}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "callbacks.model_checkpoint.save_top_k=0",
        ],
    )
    run_training(cfg)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2


def test_mixed_precision_and_gradient_clipping(data, cfg_train):
    cfg = cfg_train(
        [
            *SMALL,
            "experiment=demo_finetune",
            *data_overrides(data, "demo_finetune"),
            "trainer.fast_dev_run=true",
            "trainer.precision=bf16-mixed",
            "trainer.gradient_clip_val=1.0",
        ],
    )
    run_training(cfg)


def test_wandb_offline_run_writes_its_files(data, tmp_path, cfg_train, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = cfg_train(
        [
            *SMALL,
            f"paths.output_dir={tmp_path}",
            "experiment=demo_finetune",
            *data_overrides(data, "demo_finetune"),
            "logger=wandb",
            "callbacks=none",
            "trainer.max_steps=1",
            "trainer.limit_val_batches=1",
        ],
    )
    run_training(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")) and list((runs[0] / "files").iterdir())


def test_ddp_on_two_cpu_processes(data, tmp_path):
    """train.py under Lightning's subprocess launcher: two gloo processes, one step."""
    env = {**os.environ, "WANDB_MODE": "offline", "PROJECT_ROOT": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "experiment=demo_finetune",
            "trainer=ddp_cpu",
            f"paths.data_dir={data['root']}",
            f"hydra.run.dir={tmp_path}",
            "data.num_workers=0",
            "data.batch_size=2",
            "module.init_from=null",
            "trainer.max_steps=1",
            "trainer.limit_val_batches=1",
            "callbacks=[model_checkpoint]",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 1


def test_missing_data_root_fails_naming_it(tmp_path, cfg_train):
    cfg = cfg_train([*SMALL, "experiment=alexnet_imagenet", f"paths.data_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "imagenet")):
        run_training(cfg)


@pytest.mark.parametrize("experiment", ["alexnet_landmarks", "alexnet_rgbd"])
def test_fine_tuning_experiment_without_init_from_says_how(experiment, data, cfg_train):
    cfg = cfg_train([*SMALL, f"experiment={experiment}", *data_overrides(data, experiment)])
    with pytest.raises(ValueError, match=r"module.init_from=.*experiment=alexnet_imagenet"):
        run_training(cfg)


def test_num_classes_must_match_the_data(data, cfg_train):
    cfg = cfg_train(
        [
            *SMALL,
            "experiment=alexnet_imagenet",
            *data_overrides(data, "x"),
            "module.num_classes=1000",
        ]
    )
    with pytest.raises(ValueError, match="data has 3 classes"):
        run_training(cfg)


@pytest.mark.parametrize("debug", ["fdr", "limit", "overfit", "profiler"])
def test_debug_configs_compose(debug, cfg_train):
    cfg = cfg_train([*SMALL, "experiment=alexnet_imagenet", f"debug={debug}"])
    assert cfg.trainer.accelerator == "cpu" and cfg.callbacks is None and cfg.logger is None
