"""Evaluation of a classifier on a dataset (the logic behind ``tools/eval.py``).

``validate(...)`` loads a model from a name + checkpoint (a ``tools/train.py`` checkpoint, a timm checkpoint or a
``.safetensors`` file), ``pretrained=True``, or an ``hf-hub:`` / ``local-dir:`` id, builds the eval pipeline from
the model's pretrained cfg (or the training run's data config stored in the checkpoint), optionally overridden
(test-time resolution / crop), and returns top-1, top-5, loss, per-class accuracy and images/s.
"""
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch.utils.data import DataLoader

from zoo.checkpoint import classifier_names, compare_state_dict, load_into, num_classes as head_classes, state_dict_from
from zoo.data.loader import CorruptTracker, ShardSampler
from zoo.models._helpers import checkpoint_filter
from zoo.retrofit import add_attention, attention_record

from .config import ConfigError
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


def validate(model_name: Optional[str] = None, checkpoint: Optional[str] = None, *, pretrained: bool = False,
             use_ema: bool = True, dataset: Optional[str] = None, data_dir: str = '', split: str = 'val',
             list_file: str = '', class_names: Optional[Sequence[str]] = None, shapes: Optional[Dict[str, int]] = None,
             img_size=None, crop_pct: Optional[float] = None, crop_mode: Optional[str] = None,
             interpolation: Optional[str] = None, mean=None, std=None, use_test_size: bool = False,
             batch_size: int = 128, workers: int = 2, amp: Union[bool, str] = False, amp_dtype: str = '',
             channels_last: bool = False, device: str = '', corrupt: str = 'skip', num_classes: Optional[int] = None,
             model_kwargs=None, progress: bool = False, model=None, torchcompile: Optional[str] = None
             ) -> Dict[str, Any]:
    """Evaluate; see the module docstring. ``model`` may be given directly instead of a name / checkpoint;
    ``torchcompile``: a ``torch.compile`` backend (e.g. ``'inductor'``) for the forward passes."""
    from zoo.data.datasets import DatasetError, build_dataset, image_folder_splits, is_shapes_folder
    from zoo.data.shapes import make_classification
    from zoo.data.transforms import create_eval_transform, resolve_data_cfg

    dev = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    info: Dict[str, Any] = {}
    if model is None:
        model, info = load_model_for_eval(model_name, checkpoint, pretrained, num_classes, use_ema, model_kwargs)
    run_cfg = info.get('config') or {}
    if not model_name:
        model_name = run_cfg.get('model')
    if dataset is None:  # default: the training run's dataset, else the generated shapes
        dataset = run_cfg.get('dataset', 'shapes')
        if not data_dir and not list_file:
            data_dir = run_cfg.get('data_dir', '')
            list_file = run_cfg.get('val_list', '') if dataset == 'list' else ''
            split = run_cfg.get('val_split', split) if dataset == 'folder' else split
    model.to(dev).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)

    # data config: training run's (from the checkpoint) or the model's pretrained cfg, then explicit overrides
    base_cfg = None
    if info.get('data_cfg'):
        base_cfg = dict(info['data_cfg'])
        base_cfg['input_size'] = tuple(base_cfg['input_size'])
    if base_cfg is not None:
        data_cfg = resolve_data_cfg(pretrained_cfg=base_cfg, img_size=img_size, crop_pct=crop_pct,
                                    interpolation=interpolation, mean=mean, std=std, crop_mode=crop_mode)
    else:
        data_cfg = resolve_data_cfg(model, img_size=img_size, crop_pct=crop_pct, interpolation=interpolation,
                                    mean=mean, std=std, crop_mode=crop_mode, use_test_size=use_test_size)

    classes: Optional[List[str]] = list(class_names) if class_names else (
        list(info['class_names']) if info.get('class_names') else None)
    if dataset == 'shapes' and data_dir and Path(data_dir).expanduser().exists() and not is_shapes_folder(data_dir):
        root_p = Path(data_dir).expanduser()
        if not (root_p.is_dir() and not any(root_p.iterdir())):  # an empty folder: shapes are generated there
            splits = image_folder_splits(root_p, 'train', split)
            if splits is None:
                raise DatasetError(f'data_dir {root_p} is neither an image folder ({root_p}/<class>/<images> or '
                                   f'{root_p}/{split or "val"}/<class>/<images>) nor a shapes dataset')
            dataset = 'folder'
            if splits == ('', ''):
                split = ''
            elif not (root_p / split).is_dir():
                raise DatasetError(f'{root_p} has no {split!r} folder to evaluate (choose --split)')
    if dataset == 'shapes':
        sh = dict(n_train=3000, n_val=600, size=64, seed=0)
        for k in sh:
            if f'shapes_{k.replace("n_", "")}' in run_cfg:
                sh[k] = run_cfg[f'shapes_{k.replace("n_", "")}']
        sh.update(shapes or {})
        data = make_classification(data_dir or None, **sh)
        kind, root = 'folder', str(data.root)
        classes = classes or list(data.classes)
    else:
        kind, root = dataset, data_dir
    ds = build_dataset(kind, root=root or None, split=split if kind == 'folder' else None, list_file=list_file,
                       classes=classes, transform=create_eval_transform(data_cfg), corrupt=corrupt)
    n_cls = getattr(model, 'num_classes', None) or len(ds.classes)
    if n_cls != len(ds.classes):
        raise ConfigError(f'the model predicts {n_cls} classes but the dataset has {len(ds.classes)} '
                         f'({ds.classes[:10]}...); pass the class list the model was trained with')
    from zoo.data.datasets import collate_skip_corrupt
    loader = DataLoader(ds, batch_size=batch_size, sampler=ShardSampler(len(ds)), num_workers=workers,
                        collate_fn=collate_skip_corrupt, pin_memory=dev.type == 'cuda')
    tracker = CorruptTracker()
    amp_dt = resolve_amp_dtype(amp, amp_dtype, dev)
    t0 = time.time()
    run_model = torch.compile(model, backend=torchcompile) if torchcompile else model
    metrics = evaluate(run_model, loader, dev, n_cls, amp_dtype=amp_dt, channels_last=channels_last,
                       on_corrupt=tracker, class_names=ds.classes, progress=progress)
    result = dict(
        model=model_name or getattr(model, 'default_cfg', {}).get('architecture'), checkpoint=checkpoint,
        pretrained=pretrained, weights=info.get('weights'), dataset=dataset, data_root=root, split=split,
        list_file=list_file or None, num_classes=n_cls,
        param_count=sum(p.numel() for p in model.parameters()),
        data_cfg={k: (list(v) if isinstance(v, tuple) else v) for k, v in data_cfg.items()},
        img_size=list(data_cfg['input_size'][1:]), crop_pct=data_cfg['crop_pct'],
        interpolation=data_cfg['interpolation'], n_corrupt=tracker.count, corrupt_paths=sorted(tracker.paths),
        device=str(dev), amp=str(amp_dt) if amp_dt else None, wall_time_s=time.time() - t0, **metrics)
    if tracker.count:
        _logger.warning(f'{tracker.count} unreadable image(s) were skipped')
    return result
