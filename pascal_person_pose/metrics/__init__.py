"""The benchmark's metrics (defined exactly in ``docs/metrics.md``), one concept per module.

- :mod:`.pose_boxes`: pose boxes (PASCAL pixel convention), their IoU, head sizes.
- :mod:`.pose_ap`: pose mAP (MPII multi-person protocol, pose-box assignment), Table 1.
- :mod:`.adk`: Average Distance of Keypoints, Table 2.
- :mod:`.parts`: part mIOU (Table 3) and mIOU by person size (Table 4).
- :mod:`.pose_nms`: the paper's head/upper/lower/whole-body pose NMS.
- :mod:`.coco_oks`: COCO OKS keypoint AP by pycocotools, an extra for COCO-style comparison.
- :mod:`.summaries`: the column means over defined values and JSON nulls the tables share.

Every metric scores exactly the images it is given, returns percentages at full precision
(None where a value is undefined) and records the parameters it used under ``"params"``.

Import from the modules (``from pascal_person_pose.metrics.pose_ap import pose_ap``): the
package does not re-export, because a function named like its module would shadow the
module on the package.
"""
