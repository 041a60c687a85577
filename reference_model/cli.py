"""`ppp-baseline`: train the reference model, predict a submission, write trivial baselines.

Thin: parse, call :mod:`.training`, :mod:`.predict`, :mod:`.baselines`, print. torch is
imported inside the commands, so ``--help`` stays fast and usage errors come before the
import. Bad input or usage ends with one line on stderr and exit code 2, never a traceback
or a usage dump; so does a missing ``model`` extra (torch and the solvers).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pascal_person_pose.cli.conventions import (AbsolutePath, SentenceGroup, quiet_option,
                                                show_progress)
from pascal_person_pose.errors import InputError

_DATA = click.option("--data", "data", required=True,
                     type=AbsolutePath(exists=True, file_okay=False),
                     help="Root of a canonical dataset (`ppp prepare`).")
_THREADS = click.option("--threads", type=click.IntRange(min=1), default=None,
                        help="torch CPU threads (default: torch's choice, all cores).")
# What the `model` extra installs, by import name (pyproject.toml's [model]).
MODEL_EXTRA_MODULES = ("torch", "pulp", "highspy", "safetensors", "numba")
_PAPER = "Xia, Wang, Chen, Yuille: Joint Multi-Person Pose Estimation and Semantic Part " \
         "Segmentation, CVPR 2017"


class _Group(SentenceGroup):
    """Usage errors and :class:`InputError` as one line on stderr, exit code 2; a worker
    process that died (``ChildProcessError``) as one line, exit code 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except InputError as error:
            click.echo(f"error: {error}", err=True)
            code = 2
        except ModuleNotFoundError as error:
            missing = (error.name or "").partition(".")[0]
            if missing not in MODEL_EXTRA_MODULES:
                raise
            click.echo(f"error: ppp-baseline needs the model extra ({missing} is not "
                       "installed): pip install 'pascal-person-pose[model]'", err=True)
            code = 2
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            code = 2 if isinstance(error, click.UsageError) else error.exit_code
        except click.Abort:
            click.echo("Aborted!", err=True)
            code = 1
        except ChildProcessError as error:  # a worker process died (killed, out of memory)
            click.echo(f"error: {error}", err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@quiet_option
def main() -> None:
    """The paper's reference model (Xia et al., CVPR 2017): train, predict, baselines."""


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


@main.command()
@click.option("--config", "config_name", default="tiny", show_default=True,
              help="Model config and its training budget: paper or tiny.")
@_DATA
@click.option("--out", required=True, type=AbsolutePath(file_okay=False),
              help="Training directory (resumed when it holds a stopped run).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N (under torchrun: each process's local GPU).")
@_THREADS
@click.option("--detector-steps", type=click.IntRange(min=0), help="Detector steps.")
@click.option("--fcn-steps", type=click.IntRange(min=0), help="Pose and Part FCN steps.")
@click.option("--refine-steps", type=click.IntRange(min=0), help="Second-stage steps.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Crops per step and process (FCNs, second stage).")
@click.option("--detector-batch-size", type=click.IntRange(min=1),
              help="Images per detector step and process.")
@click.option("--refine-passes", type=click.IntRange(min=1),
              help="Jittered crops per training person for the second stage.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Steps between states.")
@click.option("--workers", type=click.IntRange(min=0), help="Data-loader processes.")
@click.option("--stop-after", metavar="STAGE",
              help="Stop once this stage is trained: detector, fcn, pairwise or refine.")
@click.option("--parallel-detector", is_flag=True,
              help="Train the detector in a second process while this one trains the other "
                   "stages (CPU, one process; each uses --threads threads).")
@click.option("--imagenet-resnet", type=AbsolutePath(exists=True, dir_okay=False),
              help="torchvision ResNet .pth for the detector and Pose FCN backbones.")
@click.option("--imagenet-vgg", type=AbsolutePath(exists=True, dir_okay=False),
              help="torchvision VGG-16 .pth for the Part FCN backbone.")
@quiet_option
def train(config_name: str, data: Path, out: Path, seed: int, device: str, threads: int | None,
          detector_steps, fcn_steps, refine_steps, batch_size, detector_batch_size,
          refine_passes, checkpoint_every, workers, stop_after: str | None,
          parallel_detector: bool, imagenet_resnet: Path | None,
          imagenet_vgg: Path | None) -> None:
    """Train the four stages (detector, FCNs, FCRF, second stage) on the train split."""
    import dataclasses

    from .config import get_config
    from .training import BUDGETS, train as run_train

    config = get_config(config_name)
    overrides = {k: v for k, v in (
        ("detector_steps", detector_steps), ("fcn_steps", fcn_steps),
        ("refine_steps", refine_steps), ("batch_size", batch_size),
        ("detector_batch_size", detector_batch_size), ("refine_passes", refine_passes),
        ("checkpoint_every", checkpoint_every), ("workers", workers)) if v is not None}
    budget = dataclasses.replace(BUDGETS[config_name], **overrides)
    _set_threads(threads)
    imagenet = {k: v for k, v in (("resnet", imagenet_resnet), ("vgg", imagenet_vgg)) if v}
    path = run_train(config, budget, data, out, seed=seed, device=device,
                     stop_after=stop_after, imagenet=imagenet, progress=show_progress(),
                     parallel_detector=parallel_detector)
    click.echo(f"wrote {path}")


@main.command()
@click.option("--checkpoint", required=True, type=AbsolutePath(file_okay=False),
              help="Training directory written by `ppp-baseline train`.")
@_DATA
@click.option("--split", default="val", show_default=True)
@click.option("--out", required=True, type=AbsolutePath(),
              help="Submission to write: a directory, or a path ending in .zip.")
@click.option("--no-segment-features", is_flag=True,
              help="FCRF without segment features (Table 1, w/o seg).")
@click.option("--no-pose-refinement", is_flag=True,
              help="First-stage part argmax, no second stage (Table 3, w/o pose).")
@click.option("--full-image", is_flag=True,
              help="No boxes: the whole image, zoomed so that its median box (detected, or "
                   "GT with --gt-boxes) is at the training scale, is one box.")
@click.option("--gt-boxes", is_flag=True, help="Ground-truth boxes instead of detections.")
@click.option("--method", help="Method name in meta.json (default: from the variant).")
@click.option("--device", default="cpu", show_default=True)
@_THREADS
@quiet_option
def predict(checkpoint: Path, data: Path, split: str, out: Path, no_segment_features: bool,
            no_pose_refinement: bool, full_image: bool, gt_boxes: bool, method: str | None,
            device: str, threads: int | None) -> None:
    """Predict poses and part maps of SPLIT and write a submission."""
    from .model import ReferenceModel
    from .predict import PredictOptions, predict_split

    _set_threads(threads)
    options = PredictOptions(use_segment_features=not no_segment_features,
                             pose_refinement=not no_pose_refinement, full_image=full_image,
                             gt_boxes=gt_boxes)
    model = ReferenceModel.load(checkpoint, device,
                                need_segment_features=(options.use_segment_features,))
    name = model.config.name
    meta = {"method": method or f"Reference model ({name}, {options.label()})",
            "paper": _PAPER, "backbone": _backbones(model.config),
            "training_data": f"train split of {model.train_data}"}
    result = predict_split(model, data, split, out, options, meta, progress=show_progress())
    click.echo(f"wrote {result.path}: {result.poses} poses, {result.boxes} boxes on "
               f"{result.images} images")
    if not result.poses:
        click.echo("warning: no pose found, so the submission holds part maps only", err=True)
    timing = ", ".join(f"{stage} {ms:.1f}" for stage, ms in result.per_image_ms().items())
    click.echo(f"ms per image: {timing}")


def _backbones(config) -> str:
    def name(backbone) -> str:
        if backbone.kind == "vgg":
            return "VGG LargeFOV " + "-".join(str(len(s)) for s in backbone.stages)
        return f"ResNet {backbone.block} {'-'.join(map(str, backbone.layers))}"

    return f"Pose FCN {name(config.pose.backbone)}; Part FCN {name(config.part.backbone)}"


@main.command()
@_DATA
@click.option("--split", default="val", show_default=True)
@click.option("--out", required=True, type=AbsolutePath(),
              help="Submission to write: a directory, or a path ending in .zip.")
@click.option("--checkpoint", type=AbsolutePath(file_okay=False),
              help="Training directory whose detector gives the boxes (required unless "
                   "--gt-boxes).")
@click.option("--gt-boxes", is_flag=True,
              help="Use the ground-truth boxes, an oracle (required unless --checkpoint).")
@click.option("--method", default=None, help="Method name in meta.json.")
@click.option("--device", default="cpu", show_default=True)
@_THREADS
@quiet_option
def trivial(data: Path, split: str, out: Path, checkpoint: Path | None, gt_boxes: bool,
            method: str | None, device: str, threads: int | None) -> None:
    """Mean training pose at each box and all-background parts: the floor to beat.

    Exactly one of --checkpoint (a trained detector's boxes) and --gt-boxes is required.
    """
    if gt_boxes == (checkpoint is not None):  # before any import of torch (seconds)
        raise click.UsageError("give exactly one of --checkpoint (detector boxes) and "
                               "--gt-boxes")
    from pascal_person_pose.dataset import Dataset

    from .baselines import MeanPose, gt_boxes as oracle_boxes, trivial_submission
    mean_pose = MeanPose.fit(Dataset(data, "train"))
    if gt_boxes:
        boxes_of, source = oracle_boxes, "GT boxes"
    else:
        from .model import ReferenceModel

        _set_threads(threads)
        detector = ReferenceModel.load(checkpoint, device, need_segment_features=()).detector
        boxes_of, source = (lambda sample: detector.detect(sample.image)), "detector boxes"
    meta = {"method": method or f"Mean pose at {source}, all-background parts"}
    path = trivial_submission(Dataset(data, split), mean_pose, boxes_of, out, meta,
                              progress=show_progress())
    click.echo(f"wrote {path}")
