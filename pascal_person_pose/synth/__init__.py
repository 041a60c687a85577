"""Synthetic multi-person scenes, the embedded default data (docs/decisions.md).

The real data cannot always be downloaded (CI, a laptop on a train), so the demo, the tests
and the benchmarks run on scenes rendered here and written in the upstream formats.
``body`` builds articulated people, ``objects`` the things around them, ``texture`` their
looks, ``scene`` composes one picture with its annotations in memory, and ``tree`` writes
a whole raw tree.
"""

from pascal_person_pose.synth.scene import Scene, SceneObject, SynthPerson, render_scene
from pascal_person_pose.synth.tree import write_raw_tree

__all__ = ["Scene", "SceneObject", "SynthPerson", "render_scene", "write_raw_tree"]
