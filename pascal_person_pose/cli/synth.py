"""`ppp synth`: write synthetic scenes as a raw upstream tree (the embedded default data)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pascal_person_pose.cli.conventions import AbsolutePath, quiet_option, show_progress


@click.command("synth")
@click.option("--out", required=True, type=AbsolutePath(),
              help="Root of the raw tree to write (created if missing).")
@click.option("--images", "n_images", type=int, default=200, show_default=True,
              help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed writes the same tree.")
@click.option("--width", type=int, default=320, show_default=True, help="Image width in pixels.")
@click.option("--height", type=int, default=240, show_default=True,
              help="Image height in pixels.")
@click.option("--val-fraction", type=float, default=0.5, show_default=True,
              help="Share of the images in the val list.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Worker processes (the output does not depend on it).")
@quiet_option
def synth(out: Path, n_images: int, seed: int, width: int, height: int, val_fraction: float,
          workers: int) -> None:
    """Render synthetic multi-person scenes into OUT in the upstream formats."""
    from pascal_person_pose.synth import write_raw_tree

    start = time.perf_counter()
    summary = write_raw_tree(out, n_images, seed, width, height, val_fraction, workers,
                             progress=show_progress())
    seconds = time.perf_counter() - start
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        click.echo(f"{key + ':':17s}{value}")
    click.echo(f"wrote {n_images} images to {out} in {seconds:.1f} s; "
               f"next: ppp prepare {out} <ROOT>")


COMMANDS = [synth]
