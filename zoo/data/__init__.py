"""Data for the zoo tools: the generated shapes datasets, image datasets and albumentations pipelines."""
from .shapes import CLASSES as SHAPES_CLASSES, make_classification, make_detection, make_segmentation
from .datasets import (
    CorruptImageError, DatasetError, ImageFolderDataset, ImageListDataset, build_dataset, collate_skip_corrupt)
from .loader import CorruptTracker, ShardSampler, seed_worker_transform
from .transforms import create_eval_transform, create_train_transform, resolve_data_cfg

__all__ = [
    'SHAPES_CLASSES', 'make_classification', 'make_detection', 'make_segmentation', 'CorruptImageError',
    'DatasetError', 'ImageFolderDataset', 'ImageListDataset', 'build_dataset', 'collate_skip_corrupt',
    'create_eval_transform', 'create_train_transform', 'resolve_data_cfg', 'CorruptTracker', 'ShardSampler',
    'seed_worker_transform',
]
