"""``python -m pascal_person_pose``: the ``ppp`` command, for environments without its script."""

from pascal_person_pose.cli import main

main(prog_name="ppp")
