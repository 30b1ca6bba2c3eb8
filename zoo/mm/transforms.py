"""``ZooAlbu``: albumentations (2.x) inside mmdetection pipelines, robust to empty boxes and masks.

A drop-in replacement for mmdet 3.3's ``Albu`` (same arguments) that keeps boxes, labels, ignore flags and masks
consistent when a transform drops some or all boxes (or returns ``None`` with ``skip_img_without_anno=True``), casts
labels / ignore flags back to int64 / bool, optionally converts BGR -> RGB around the transforms (``bgr_to_rgb``) and
builds the ``Compose`` with ``strict=True`` by default. Use it after ``Resize`` and before ``PackDetInputs``; why it
exists and an example pipeline entry: docs/detection_segmentation.md, "ZooBackbone and ZooAlbu".

Needs mmdet (with mmcv's compiled ops); :mod:`zoo.mm` registers it when those import.
"""
from typing import List, Optional

import numpy as np
from albumentations import Compose
from mmdet.datasets.transforms import Albu
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from mmdet.structures.mask import BitmapMasks, PolygonMasks

__all__ = ['ZooAlbu', 'register_transforms']

_DTYPES = {'gt_bboxes_labels': np.int64, 'gt_ignore_flags': bool}


class ZooAlbu(Albu):
    """mmdet ``Albu`` that handles images whose boxes are all dropped (or absent). See the module docstring."""

    def __init__(self, transforms: List[dict], bbox_params: Optional[dict] = None, keymap: Optional[dict] = None,
                 skip_img_without_anno: bool = False, bgr_to_rgb: bool = False, strict: bool = True) -> None:
        bbox_params = dict(bbox_params) if bbox_params else None
        if bbox_params is not None:
            bbox_params.setdefault('clip', True)  # boxes touching the border (x2 == W) are valid in mmdet
        super().__init__(transforms, bbox_params=bbox_params, keymap=keymap,
                         skip_img_without_anno=skip_img_without_anno)
        self.bgr_to_rgb = bgr_to_rgb
        self.aug = Compose([self.albu_builder(t) for t in self.transforms], bbox_params=self.bbox_params,
                           strict=strict)

    @autocast_box_type()
    def transform(self, results: dict) -> Optional[dict]:
        results = self.mapper(results, self.keymap_to_albu)
        if self.bgr_to_rgb:
            results['image'] = np.ascontiguousarray(results['image'][..., ::-1])
        data, extra = self._to_albu(results)
        out = self.aug(**data)
        results.update({k: v for k, v in out.items()})
        results = self._from_albu(results, extra)
        if results is None:
            return None
        if self.bgr_to_rgb:
            results['image'] = np.ascontiguousarray(results['image'][..., ::-1])
        results = self.mapper(results, self.keymap_back)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def _to_albu(self, results: dict):
        """Split ``results`` into what albumentations gets (numpy arrays only) and what is needed afterwards."""
        data = {'image': results['image']}
        extra = {}
        has_boxes = 'bboxes' in results
        if has_boxes:
            boxes = results['bboxes']
            if not isinstance(boxes, HorizontalBoxes):
                raise NotImplementedError('ZooAlbu only supports horizontal boxes')
            boxes = boxes.numpy().astype(np.float32).reshape(-1, 4)
            data['bboxes'] = boxes
            extra['n'] = len(boxes)
            if self.filter_lost_elements:
                data['idx_mapper'] = np.arange(len(boxes), dtype=np.int64)
            elif self.bbox_params is not None:
                for field in self.bbox_params.label_fields or []:
                    if field in results:
                        data[field] = np.asarray(results[field])
        if 'masks' in results:
            masks = results['masks']
            if isinstance(masks, PolygonMasks):
                raise NotImplementedError('ZooAlbu only supports BitmapMasks')
            extra['mask_type'] = type(masks)
            if len(masks):
                data['masks'] = [m for m in masks.masks]
        for key in ('mask',):  # a semantic map, if the keymap routes one here
            if key in results:
                data[key] = results[key]
        return data, extra

    def _from_albu(self, results: dict, extra: dict) -> Optional[dict]:
        h, w = results['image'].shape[:2]
        keep = None
        if 'bboxes' in results:
            boxes = np.asarray(results['bboxes'], dtype=np.float32).reshape(-1, 4)
            results['bboxes'] = HorizontalBoxes(boxes)
            if self.filter_lost_elements:
                keep = np.asarray(results.pop('idx_mapper'), dtype=np.int64).reshape(-1)
                for field in self.origin_label_fields:
                    if field in results:
                        arr = np.asarray(results[field])
                        results[field] = arr[keep] if len(arr) else arr.reshape(0)
        for field, dtype in _DTYPES.items():
            if field in results:
                results[field] = np.asarray(results[field]).astype(dtype).reshape(-1)
        if 'mask_type' in extra:
            masks = results.get('masks')
            masks = [] if masks is None or isinstance(masks, BitmapMasks) and not len(masks) else list(masks)
            if keep is not None and len(masks):
                masks = [masks[i] for i in keep]
            arr = np.stack(masks).astype(np.uint8) if len(masks) else np.zeros((0, h, w), dtype=np.uint8)
            results['masks'] = extra['mask_type'](arr, h, w)
        n_left = len(results['bboxes']) if 'bboxes' in results else None
        if n_left == 0 and self.skip_img_without_anno:
            return None
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.transforms}, bgr_to_rgb={self.bgr_to_rgb})'


def register_transforms() -> None:
    TRANSFORMS.register_module(name='ZooAlbu', module=ZooAlbu, force=True)
