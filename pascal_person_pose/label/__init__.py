"""Labelling helper (``ppp label``): joint proposals from part masks, QA checks, a local
browser labeler, and CVAT / Label Studio interchange.

- ``store``: atomic edits of a split's canonical annotation file, revisioned per image;
  proposals live beside the labels (``proposed_keypoints``), never in ``keypoints``;
- ``proposals``: joints where the parts meet (``ppp label propose``);
- ``qa``: checks of labels against the masks and the split's bone statistics
  (``ppp label check``);
- ``server`` + ``static/labeler.html``: the browser labeler (``ppp label serve``, needs
  the ``label`` extra: Flask);
- ``interchange``, ``interchange_cvat``, ``interchange_coco``, ``interchange_labelstudio``:
  ``ppp label export`` and ``ppp label import`` (CVAT XML, COCO Keypoints for CVAT, Label
  Studio JSON; docs/labeler.md).

Nothing here is imported by ``import pascal_person_pose``; Flask only by ``server``.
"""
