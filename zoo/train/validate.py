"""Evaluation of a classifier on a dataset (the logic behind ``tools/eval.py``).

``validate(cfg)`` (an ``EvalConfig``: the training config's model, data and loop sections and zoo-eval's options)
loads a model from a name + checkpoint (a ``tools/train.py`` checkpoint, a timm checkpoint or a
``.safetensors`` file), ``pretrained=True``, or an ``hf-hub:`` / ``local-dir:`` id, builds the eval pipeline from
the model's pretrained cfg (or the training run's data config stored in the checkpoint), optionally overridden
(test-time resolution / crop), and returns top-1, top-5, loss, per-class accuracy and images/s.
"""
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from zoo.checkpoint import classifier_names, compare_state_dict, load_into, num_classes as head_classes, state_dict_from
from zoo.data.loader import CorruptTracker, ShardSampler
from zoo.models import checkpoint_filter
from zoo.retrofit import add_attention, attention_record

from .config import SETTINGS, ConfigError, EvalConfig
from .loop import evaluate
from .utils import load_checkpoint_file, resolve_amp_dtype

__all__ = ['validate', 'load_model_for_eval']

_logger = logging.getLogger('zoo.train')


def load_model_for_eval(model_name: Optional[str] = None, checkpoint: Optional[str] = None, pretrained: bool = False,
                        num_classes: Optional[int] = None, use_ema: bool = True, model_kwargs=None):
    """Returns ``(model, info)``; ``info`` has ``class_names`` and ``data_cfg`` / ``config`` when the checkpoint is
    a ``tools/train.py`` one (so the model name and class list may be omitted)."""
    import timm
    info: Dict[str, Any] = {}
    ckpt = None
    if checkpoint:
        ckpt = load_checkpoint_file(checkpoint)
        if isinstance(ckpt, dict):
            info['class_names'] = ckpt.get('class_names')
            info['data_cfg'] = ckpt.get('data_cfg')
            info['config'] = ckpt.get('config')
            info['epoch'] = ckpt.get('epoch')
            if ckpt.get('model_kwargs') and model_name in (None, '', ckpt.get('arch')):  # the architecture as trained
                model_kwargs = dict(ckpt['model_kwargs'], **(model_kwargs or {}))
            model_name = model_name or ckpt.get('arch')
            if num_classes is None:
                num_classes = ckpt.get('num_classes')
    if not model_name:
        raise ConfigError('give a model name (or a checkpoint written by tools/train.py, which records it)')
    from zoo.errors import check_model_name
    check_model_name(model_name)
    kwargs = dict(model_kwargs or {})
    sd = state_dict_from(ckpt, use_ema=use_ema) if checkpoint else None
    if num_classes is None and checkpoint and not pretrained:
        # the class count of the classifier in the checkpoint
        num_classes = head_classes(sd, classifier_names(timm.create_model(model_name, pretrained=False, **kwargs)))
    if num_classes is not None:
        kwargs['num_classes'] = num_classes
    model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    retrofit = attention_record(ckpt)
    if retrofit:  # a run that added attention to the model: the same gates, then its weights
        add_attention(model, retrofit[0], **retrofit[1])
    if checkpoint:
        has_ema = isinstance(ckpt, dict) and ckpt.get('state_dict_ema') is not None
        converts = bool(compare_state_dict(sd, model))  # not in the model's layout: the family's filter converts it
        load_into(model, sd, filter_fn=checkpoint_filter(model) if converts else None, label=f'checkpoint {checkpoint}',
                  target=model_name)
        info['weights'] = 'ema' if (use_ema and has_ema) else 'model'
    return model, info


def _source(cfg: EvalConfig, run_cfg: Dict[str, Any]) -> Tuple[str, str, str, str]:
    """``(dataset, data_dir, split, list_file)``: as given, else the training run's dataset, else the shapes."""
    d, e = cfg.data, cfg.eval
    dataset, data_dir, split, list_file = d.dataset, d.data_dir or '', e.split, e.list_file
    if dataset is None:
        dataset = run_cfg.get('dataset', 'shapes')
        if not data_dir and not list_file:
            data_dir = run_cfg.get('data_dir', '')
            list_file = run_cfg.get('val_list', '') if dataset == 'list' else ''
            split = run_cfg.get('val_split', split) if dataset == 'folder' else split
    return dataset, data_dir, split, list_file


def _eval_data_cfg(cfg: EvalConfig, model: nn.Module, info: Dict[str, Any]) -> Dict[str, Any]:
    """The training run's data config (from the checkpoint) or the model's pretrained cfg, then the overrides."""
    from zoo.data.transforms import resolve_data_cfg
    d = cfg.data
    img_size = tuple(d.input_size[-2:]) if d.input_size else d.img_size
    over = dict(img_size=img_size, crop_pct=d.crop_pct, interpolation=d.interpolation, mean=d.mean, std=d.std,
                crop_mode=d.crop_mode)
    if info.get('data_cfg'):
        base_cfg = dict(info['data_cfg'])
        base_cfg['input_size'] = tuple(base_cfg['input_size'])
        return resolve_data_cfg(pretrained_cfg=base_cfg, **over)
    return resolve_data_cfg(model, use_test_size=cfg.eval.use_test_size, **over)


def _image_folder_split(data_dir: str, split: str) -> Optional[str]:
    """A shapes ``data_dir`` that is an image folder: the split to evaluate there (None: not an image folder)."""
    from zoo.data.datasets import DatasetError, image_folder_splits, is_shapes_folder
    root_p = Path(data_dir).expanduser()
    if is_shapes_folder(data_dir) or (root_p.is_dir() and not any(root_p.iterdir())):
        return None  # a shapes cache, or an empty folder: shapes are generated there
    splits = image_folder_splits(root_p, 'train', split)
    if splits is None:
        raise DatasetError(f'data_dir {root_p} is neither an image folder ({root_p}/<class>/<images> or '
                           f'{root_p}/{split or "val"}/<class>/<images>) nor a shapes dataset')
    if splits == ('', ''):
        return ''
    if not (root_p / split).is_dir():
        raise DatasetError(f'{root_p} has no {split!r} folder to evaluate (choose --split)')
    return split


def _eval_dataset(cfg: EvalConfig, run_cfg: Dict[str, Any], classes: Optional[List[str]], data_cfg):
    """``(dataset, root, split, list_file, ds)``: the evaluation set with its transform."""
    from zoo.data.datasets import build_dataset
    from zoo.data.shapes import make_classification
    from zoo.data.transforms import create_eval_transform
    dataset, data_dir, split, list_file = _source(cfg, run_cfg)
    if dataset == 'shapes' and data_dir and Path(data_dir).expanduser().exists():
        folder_split = _image_folder_split(data_dir, split)
        if folder_split is not None:
            dataset, split = 'folder', folder_split
    if dataset == 'shapes':
        d = cfg.data
        sh = {k: getattr(d, f'shapes_{k}') for k in ('train', 'val', 'size', 'seed')}
        sh = {k: v if v is not None else run_cfg.get(f'shapes_{k}', SETTINGS[f'shapes_{k}'].default())
              for k, v in sh.items()}
        data = make_classification(data_dir or None, n_train=sh['train'], n_val=sh['val'], size=sh['size'],
                                   seed=sh['seed'])
        kind, root = 'folder', str(data.root)
        classes = classes or list(data.classes)
    else:
        kind, root = dataset, data_dir
    ds = build_dataset(kind, root=root or None, split=split if kind == 'folder' else None, list_file=list_file,
                       classes=classes, transform=create_eval_transform(data_cfg), corrupt=cfg.data.corrupt)
    return dataset, root, split, list_file, ds


def validate(cfg: EvalConfig, model: Optional[nn.Module] = None) -> Dict[str, Any]:
    """Evaluate; see the module docstring. ``model`` may be given directly instead of a name / checkpoint."""
    from zoo.data.datasets import collate_skip_corrupt
    m, d, loop, e = cfg.model, cfg.data, cfg.loop, cfg.eval
    dev = torch.device(loop.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    info: Dict[str, Any] = {}
    if model is None:
        model, info = load_model_for_eval(m.model, e.checkpoint, m.pretrained, m.num_classes, e.use_ema,
                                          m.model_kwargs)
    run_cfg = info.get('config') or {}
    model_name = m.model or run_cfg.get('model')
    model.to(dev).eval()
    if loop.channels_last:
        model.to(memory_format=torch.channels_last)
    data_cfg = _eval_data_cfg(cfg, model, info)
    classes = list(d.class_names) if d.class_names else (list(info['class_names']) if info.get('class_names')
                                                         else None)
    dataset, root, split, list_file, ds = _eval_dataset(cfg, run_cfg, classes, data_cfg)
    n_cls = getattr(model, 'num_classes', None) or len(ds.classes)
    if n_cls != len(ds.classes):
        raise ConfigError(f'the model predicts {n_cls} classes but the dataset has {len(ds.classes)} '
                          f'({ds.classes[:10]}...); pass the class list the model was trained with')
    loader = DataLoader(ds, batch_size=loop.batch_size, sampler=ShardSampler(len(ds)), num_workers=d.workers,
                        collate_fn=collate_skip_corrupt, pin_memory=dev.type == 'cuda')
    tracker = CorruptTracker()
    amp_dt = resolve_amp_dtype(loop.amp or False, loop.amp_dtype or '', dev)
    t0 = time.time()
    run_model = torch.compile(model, backend=loop.torchcompile) if loop.torchcompile else model
    metrics = evaluate(run_model, loader, dev, n_cls, amp_dtype=amp_dt, channels_last=loop.channels_last,
                       on_corrupt=tracker, class_names=ds.classes, progress=e.progress)
    result = dict(
        model=model_name or getattr(model, 'default_cfg', {}).get('architecture'), checkpoint=e.checkpoint,
        pretrained=m.pretrained, weights=info.get('weights'), dataset=dataset, data_root=root, split=split,
        list_file=list_file or None, num_classes=n_cls,
        param_count=sum(p.numel() for p in model.parameters()),
        data_cfg={k: (list(v) if isinstance(v, tuple) else v) for k, v in data_cfg.items()},
        img_size=list(data_cfg['input_size'][1:]), crop_pct=data_cfg['crop_pct'],
        interpolation=data_cfg['interpolation'], n_corrupt=tracker.count, corrupt_paths=sorted(tracker.paths),
        device=str(dev), amp=str(amp_dt) if amp_dt else None, wall_time_s=time.time() - t0, **metrics)
    if tracker.count:
        _logger.warning(f'{tracker.count} unreadable image(s) were skipped')
    return result
