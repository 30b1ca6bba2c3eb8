"""The config resolved, once, into the parts of a training run -- used by ``Trainer`` and ``run_train_steps`` alike.

Top to bottom: data (``resolve_dataset``, ``build_datasets``, ``build_transforms``, ``build_loaders``), model
(``build_model``: pretrained weights, ``initial_checkpoint`` through the family's checkpoint filter, ``add_attention``
gates once the weights are in), optimiser / schedule (``resolve_lr``, ``build_optimizer`` with the gates' param
groups, ``build_scheduler`` with ``BackboneWarmup``), ``build_ema``, ``build_amp``, ``build_mixup``, ``build_loss``;
``build_training`` bundles them (``TrainParts``), ``wrap_model`` adds DDP and ``torch.compile``. Details:
docs/training.md.
"""
import logging
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from .config import ConfigError, TrainConfig
from .loop import TrainState
from zoo.checkpoint import CheckpointError, load_into
from zoo.models import checkpoint_filter
from zoo.retrofit import ATTENTIONS, add_attention, attention_record, gate_parameters

from .utils import DistInfo, barrier, is_primary, load_checkpoint_file, resolve_amp_dtype

__all__ = ['resolve_dataset', 'build_datasets', 'build_model', 'load_initial_checkpoint',
           'build_transforms', 'Loaders', 'build_loaders', 'resolve_lr', 'build_optimizer', 'build_scheduler',
           'build_ema', 'build_amp', 'build_mixup', 'build_loss', 'TrainParts', 'build_training', 'wrap_model',
           'InitialCheckpointError', 'gate_param_groups', 'BackboneWarmup']

_logger = logging.getLogger('zoo.train')


# ---------------------------------------------------------------- data

def _shapes_data(cfg: TrainConfig):
    from zoo.data.shapes import make_classification
    d = cfg.data
    return make_classification(d.data_dir or None, n_train=d.shapes_train, n_val=d.shapes_val, size=d.shapes_size,
                               seed=d.shapes_seed)


def resolve_dataset(cfg: TrainConfig) -> TrainConfig:
    """The config with its data source made explicit: ``dataset: shapes`` (the default) with a ``data_dir`` that is
    an existing ImageFolder tree (``data_dir/train/<class>/...`` and ``val/``, or ``data_dir/<class>/...``) and not
    a shapes cache becomes ``dataset: folder`` with the splits found there; ``dataset: folder`` without
    ``data_dir/<train_split>`` but with class folders directly trains on them (no validation). Raises
    ``DatasetError`` for a missing folder, a file, or a folder that is not an image folder."""
    from zoo.data.datasets import DatasetError, image_folder_splits, is_shapes_folder
    root = Path(cfg.data.data_dir).expanduser() if cfg.data.data_dir else None
    note = ''
    if cfg.data.dataset == 'shapes' and root is not None and root.exists() and not is_shapes_folder(root):
        if root.is_dir() and not any(root.iterdir()):
            return cfg  # an empty folder: the shapes set is generated there
        splits = image_folder_splits(root, cfg.data.train_split, cfg.data.val_split)
        if splits is None:
            raise DatasetError(f'data_dir {root} is neither an image folder ({root}/<class>/<images> or '
                               f'{root}/train/<class>/<images>) nor a shapes dataset; for a CSV/JSON list of images '
                               f'use dataset list')
        cfg = cfg.replace(dataset='folder', train_split=splits[0], val_split=splits[1])
        note = f'data_dir {root} is an image folder: dataset folder'
    elif cfg.data.dataset == 'folder' and root is not None:
        if not (cfg.data.train_split and (root / cfg.data.train_split).is_dir()):
            splits = image_folder_splits(root, cfg.data.train_split, cfg.data.val_split)
            if splits is None:
                split = cfg.data.train_split or 'train'
                raise DatasetError(f'{root} has no {cfg.data.train_split or "class"} folder (expected '
                                   f'{root}/{split}/<class>/<images> or {root}/<class>/<images>)')
            if splits != (cfg.data.train_split, cfg.data.val_split):
                cfg = cfg.replace(train_split=splits[0], val_split=splits[1])
                note = f'data_dir {root}: training on {root / splits[0]}'
    if note:
        note += (f', train split {cfg.data.train_split!r}, ' + (f'validation split {cfg.data.val_split!r}'
                                                             if cfg.data.val_split else 'no validation split'))
        _logger.info(note)
    return cfg


def build_datasets(cfg: TrainConfig, dist: Optional[DistInfo] = None):
    """(train_dataset, val_dataset or None, class_names) without transforms; validates classes up front.

    The generated shapes set is written by rank 0 first (others wait), then reused from the cache.
    """
    from zoo.data.datasets import DatasetError, ImageFolderDataset, ImageListDataset
    dist = dist or DistInfo()
    kind = cfg.data.dataset
    classes = cfg.data.class_names
    if kind == 'shapes':
        if is_primary(dist):
            data = _shapes_data(cfg)
        barrier(dist)
        if not is_primary(dist):
            data = _shapes_data(cfg)
        train_ds = ImageFolderDataset(data.train_dir, classes=classes or list(data.classes), corrupt=cfg.data.corrupt)
        val_ds = ImageFolderDataset(data.val_dir, classes=train_ds.classes, corrupt=cfg.data.corrupt)
        return train_ds, val_ds, train_ds.classes
    if kind == 'folder':
        root = Path(cfg.data.data_dir).expanduser()
        train_dir = root / cfg.data.train_split if cfg.data.train_split else root
        train_ds = ImageFolderDataset(train_dir, classes=classes, corrupt=cfg.data.corrupt)
        val_ds = None
        if cfg.data.val_split:
            val_dir = root / cfg.data.val_split
            if not val_dir.is_dir():
                raise DatasetError(f'validation folder {val_dir} does not exist (set val_split to "" to train '
                                   f'without validation)')
            val_ds = ImageFolderDataset(val_dir, classes=train_ds.classes, corrupt=cfg.data.corrupt)
        return train_ds, val_ds, train_ds.classes
    root = cfg.data.data_dir or None
    train_ds = ImageListDataset(cfg.data.train_list, root=root, classes=classes, corrupt=cfg.data.corrupt)
    val_ds = None
    if cfg.data.val_list:
        val_ds = ImageListDataset(cfg.data.val_list, root=root, classes=train_ds.classes, corrupt=cfg.data.corrupt)
    return train_ds, val_ds, train_ds.classes



# ---------------------------------------------------------------- model

def _pair(size) -> tuple:
    return (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)


def build_model(cfg: TrainConfig, num_classes: int) -> Tuple[nn.Module, Dict[str, Any], Any]:
    """``(model, model_kwargs, img_size)``: the model for ``num_classes`` classes (on the CPU), the keyword arguments
    that rebuild its architecture (recorded in checkpoints) and the asked input size (None: the pretrained cfg's)."""
    from zoo.errors import check_model_name
    check_model_name(cfg.model.model)
    kwargs = dict(cfg.model.model_kwargs or {})
    if cfg.model.drop_rate:
        kwargs['drop_rate'] = cfg.model.drop_rate
    if cfg.model.drop_path_rate is not None:
        kwargs['drop_path_rate'] = cfg.model.drop_path_rate
    img_size = tuple(cfg.data.input_size[-2:]) if cfg.data.input_size else cfg.data.img_size
    pretrained = bool(cfg.model.pretrained or cfg.model.pretrained_path)
    if cfg.model.pretrained_path:
        path = Path(cfg.model.pretrained_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'pretrained_path {path} does not exist')
        kwargs['pretrained_cfg_overlay'] = dict(file=str(path))
    model = _create(cfg.model.model, pretrained, num_classes, kwargs)
    if (img_size and 'img_size' not in kwargs and model.pretrained_cfg.get('fixed_input_size')
            and tuple(model.pretrained_cfg['input_size'][-2:]) != _pair(img_size)):
        # a model built for one input size (e.g. absolute position embeddings): build it for the new size
        kwargs['img_size'] = _pair(img_size)
        model = _create(cfg.model.model, pretrained, num_classes, kwargs)
    # gates go in once the weights are loaded, except before an initial checkpoint of a retrofitted run (which has them)
    gates_first = bool(cfg.model.add_attention and cfg.model.initial_checkpoint
                       and attention_record(load_checkpoint_file(cfg.model.initial_checkpoint)))
    if gates_first:
        _add_attention(model, cfg)
    if cfg.model.initial_checkpoint:
        load_initial_checkpoint(model, cfg.model.initial_checkpoint, use_ema=cfg.model.initial_checkpoint_ema)
    if cfg.model.add_attention and not gates_first:
        _add_attention(model, cfg)
    if cfg.model.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model_kwargs = {k: v for k, v in kwargs.items()
                    if k not in ('drop_rate', 'drop_path_rate', 'pretrained_cfg_overlay')}
    return model, model_kwargs, img_size


def _add_attention(model: nn.Module, cfg: TrainConfig) -> None:
    add_attention(model, cfg.model.add_attention, **cfg.model.add_attention_kwargs)
    n = sum(isinstance(m, ATTENTIONS[cfg.model.add_attention]) for m in model.modules())
    _logger.info(f'added {n} {cfg.model.add_attention} gates (identity at insertion)')


def _create(name: str, pretrained: bool, num_classes: int, kwargs: Dict[str, Any]) -> nn.Module:
    """timm.create_model, with the mistakes a user makes there (a keyword the model does not take, pretrained
    weights that do not exist) as one-line ConfigErrors."""
    import timm
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except TypeError as e:
        if 'unexpected keyword' not in str(e) and 'got an unexpected' not in str(e):
            raise
        raise ConfigError(f'model {name!r} does not take {e} (check model_kwargs)') from e
    except RuntimeError as e:
        if not (pretrained and 'pretrained' in str(e).lower()):
            raise
        raise ConfigError(f'model {name!r}: {e} (drop --pretrained, or give --pretrained-path)') from e


class InitialCheckpointError(CheckpointError, RuntimeError):
    """An ``initial_checkpoint`` whose weights do not fit the model."""


def load_initial_checkpoint(model: nn.Module, path: str, use_ema: bool = True) -> List[str]:
    """Load weights for fine-tuning, as timm loads pretrained weights: the checkpoint's state dict (EMA weights
    with ``use_ema``) goes through the family's checkpoint filter (so an official-layout file works, as with
    ``pretrained_path``); classifier tensors whose shape differs (another class count) are skipped and left freshly
    initialised; any other missing / unexpected / mis-shaped tensor raises one error naming them.
    Returns the skipped keys."""
    skipped = load_into(model, load_checkpoint_file(path), filter_fn=checkpoint_filter(model), use_ema=use_ema,
                        new_head=True, error=lambda diff: InitialCheckpointError(
                            f'initial checkpoint {path} does not fit the model: {diff.brief()}'))
    if skipped:
        _logger.info(f'initial checkpoint: kept the new classifier ({", ".join(skipped)} differ in shape)')
    return skipped


# ---------------------------------------------------------------- transforms and loaders

def build_transforms(cfg: TrainConfig, model: nn.Module, train_ds, val_ds, img_size=None) -> Dict[str, Any]:
    """Set the datasets' albumentations pipelines from the model's pretrained cfg (input size, crop, interpolation,
    mean / std) and the config's overrides and augmentation; returns the data config (saved in checkpoints)."""
    from zoo.data.transforms import create_eval_transform, create_train_transform, resolve_data_cfg
    data_cfg = resolve_data_cfg(model, img_size=img_size, crop_pct=cfg.data.crop_pct,
                                interpolation=cfg.data.interpolation or None, mean=cfg.data.mean, std=cfg.data.std,
                                crop_mode=cfg.data.crop_mode)
    train_ds.transform = create_train_transform(
        data_cfg, scale=cfg.aug.scale, ratio=cfg.aug.ratio, hflip=cfg.aug.hflip, vflip=cfg.aug.vflip,
        color_jitter=cfg.aug.color_jitter, color_jitter_prob=cfg.aug.color_jitter_prob, auto_augment=cfg.aug.aa,
        re_prob=cfg.aug.reprob, seed=cfg.loop.seed)
    if val_ds is not None:
        val_ds.transform = create_eval_transform(data_cfg, seed=cfg.loop.seed)
    return data_cfg


@dataclass
class Loaders:
    train: DataLoader
    val: Optional[DataLoader]
    sampler: DistributedSampler  # set_epoch() each epoch
    generator: torch.Generator   # seeded each epoch: worker seeds
    steps_per_epoch: int
    updates_per_epoch: int


def build_loaders(cfg: TrainConfig, train_ds, val_ds, dist: DistInfo) -> Loaders:
    """The training loader (a shuffling DistributedSampler; the last incomplete batch is dropped whenever a full
    one exists) and the validation loader (each rank an exact shard, no padding)."""
    from zoo.data.datasets import collate_skip_corrupt
    from zoo.data.loader import ShardSampler, seed_worker_transform
    sampler = DistributedSampler(train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                 seed=cfg.loop.seed, drop_last=False)
    gen = torch.Generator()
    per_rank = math.ceil(len(train_ds) / dist.world_size)
    common = dict(num_workers=cfg.data.workers, collate_fn=collate_skip_corrupt, pin_memory=cfg.data.pin_memory,
                  worker_init_fn=seed_worker_transform, persistent_workers=False)
    train = DataLoader(train_ds, batch_size=cfg.loop.batch_size, sampler=sampler,
                       drop_last=per_rank >= cfg.loop.batch_size, generator=gen, **common)
    val = None
    if val_ds is not None:
        val = DataLoader(val_ds, batch_size=cfg.loop.val_batch_size or 2 * cfg.loop.batch_size,
                         sampler=ShardSampler(len(val_ds), dist.rank, dist.world_size),
                         generator=torch.Generator().manual_seed(cfg.loop.seed), **common)
    n = len(train)
    steps = min(n, cfg.loop.steps_per_epoch) if cfg.loop.steps_per_epoch else n
    if steps == 0:
        raise ConfigError(f'the training set ({len(train_ds)} images) gives no batches of {cfg.loop.batch_size}')
    return Loaders(train, val, sampler, gen, steps, math.ceil(steps / cfg.loop.grad_accum_steps))


# ---------------------------------------------------------------- optimiser, schedule, EMA, AMP

def resolve_lr(cfg: TrainConfig, world_size: int = 1) -> float:
    """``lr`` if set, else ``lr_base`` scaled (linear, or sqrt for adaptive optimisers) by the global batch."""
    if cfg.optim.lr is not None:
        return float(cfg.optim.lr)
    global_batch = cfg.loop.batch_size * world_size * cfg.loop.grad_accum_steps
    ratio = global_batch / cfg.optim.lr_base_size
    adaptive = any(k in cfg.optim.opt.lower() for k in ('ada', 'lamb'))
    scale = cfg.optim.lr_base_scale or ('sqrt' if adaptive else 'linear')
    return float(cfg.optim.lr_base) * (ratio ** 0.5 if scale == 'sqrt' else ratio)


def _gate_groups(cfg: TrainConfig) -> bool:
    return cfg.optim.gate_lr_mult != 1.0 or cfg.sched.backbone_warmup_epochs > 0


def gate_param_groups(model: nn.Module, weight_decay: float, gate_lr: float) -> List[Dict[str, Any]]:
    """timm's weight-decay param groups, each split into the backbone's part and the CBAM / triplet gates' part
    (marked ``'gates': True``, learning rate ``gate_lr``; none when the model has no such module)."""
    from timm.optim import param_groups_weight_decay
    gates = {id(p) for p in gate_parameters(model)}
    no_wd = getattr(model, 'no_weight_decay', lambda: set())()
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_wd)
    out = []
    for is_gate in (False, True):
        for g in groups:
            ps = [p for p in g['params'] if (id(p) in gates) == is_gate]
            if ps:
                out.append(dict(g, params=ps, lr=gate_lr, gates=True) if is_gate else dict(g, params=ps))
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig, world_size: int = 1) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2
    lr = resolve_lr(cfg, world_size)
    kwargs = dict(opt=cfg.optim.opt, lr=lr, weight_decay=cfg.optim.weight_decay, momentum=cfg.optim.momentum)
    if _gate_groups(cfg):
        if cfg.optim.layer_decay is not None:
            raise ConfigError('layer_decay cannot be combined with gate_lr_mult / backbone_warmup_epochs')
        kwargs['param_group_fn'] = partial(gate_param_groups, weight_decay=cfg.optim.weight_decay,
                                           gate_lr=lr * cfg.optim.gate_lr_mult)
    if cfg.optim.layer_decay is not None:
        kwargs['layer_decay'] = cfg.optim.layer_decay
    if cfg.optim.opt_eps is not None:
        kwargs['eps'] = cfg.optim.opt_eps
    if cfg.optim.opt_betas:
        kwargs['betas'] = tuple(cfg.optim.opt_betas)
    return create_optimizer_v2(model, **kwargs)


class BackboneWarmup:
    """timm's scheduler, with the learning rate of the param groups outside the gates (no ``'gates'`` mark) scaled by
    a linear ramp from 0 to 1 over ``epochs`` (timm's per-group ``lr_scale``, applied at each of its updates).
    Made before timm's scheduler (``scheduler`` set afterwards), so that its first learning rates include the ramp."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: float, updates_per_epoch: int):
        self.scheduler, self.epochs, self.updates_per_epoch = None, epochs, updates_per_epoch
        self.groups = [g for g in optimizer.param_groups if not g.get('gates')]
        self.ramp(0)

    def ramp(self, epoch: float) -> None:
        for g in self.groups:
            g['lr_scale'] = min(1.0, epoch / self.epochs)

    def step(self, epoch: int, metric: Optional[float] = None) -> None:
        self.ramp(epoch)
        self.scheduler.step(epoch, metric)

    def step_update(self, num_updates: int, metric: Optional[float] = None) -> None:
        self.ramp(num_updates / self.updates_per_epoch)
        self.scheduler.step_update(num_updates, metric)

    def state_dict(self) -> Dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int):
    """timm's scheduler (None for sched 'none') and the number of epochs it covers (cooldown included); with
    ``backbone_warmup_epochs`` wrapped in :class:`BackboneWarmup`."""
    from timm.scheduler import create_scheduler_v2
    warmup = cfg.sched.backbone_warmup_epochs
    if warmup > 0 and cfg.sched.sched == 'none':
        raise ConfigError("backbone_warmup_epochs needs a schedule (sched is 'none')")
    ramp = BackboneWarmup(optimizer, warmup, updates_per_epoch) if warmup > 0 else None
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, sched=cfg.sched.sched, num_epochs=cfg.sched.epochs, decay_epochs=cfg.sched.decay_epochs,
        decay_milestones=cfg.sched.decay_milestones, cooldown_epochs=cfg.sched.cooldown_epochs,
        patience_epochs=cfg.sched.patience_epochs, decay_rate=cfg.sched.decay_rate, min_lr=cfg.sched.min_lr,
        warmup_lr=cfg.sched.warmup_lr, warmup_epochs=cfg.sched.warmup_epochs, warmup_prefix=cfg.sched.warmup_prefix,
        plateau_mode='min' if cfg.output.eval_metric == 'loss' else 'max',
        step_on_epochs=not cfg.sched.sched_on_updates, updates_per_epoch=updates_per_epoch)
    if ramp is not None:
        ramp.scheduler, scheduler = scheduler, ramp
    return scheduler, num_epochs


def build_ema(model: nn.Module, cfg: TrainConfig, device: torch.device):
    from timm.utils import ModelEmaV3
    if not cfg.loop.model_ema:
        return None
    return ModelEmaV3(model, decay=cfg.loop.model_ema_decay, use_warmup=cfg.loop.model_ema_warmup, device=device)


def build_amp(cfg: TrainConfig, device: torch.device):
    """``(autocast dtype or None, GradScaler or None)``: a GradScaler only for float16 on CUDA."""
    amp_dtype = resolve_amp_dtype(cfg.loop.amp, cfg.loop.amp_dtype, device)
    scaler = torch.amp.GradScaler('cuda') if amp_dtype == torch.float16 and device.type == 'cuda' else None
    return amp_dtype, scaler


# ---------------------------------------------------------------- mixup and loss

def build_loss(cfg: TrainConfig, mixup_active: bool) -> nn.Module:
    """timm's losses: soft-target CE with mixup/cutmix, label-smoothing CE, BCE, or plain CE."""
    from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    if cfg.aug.bce_loss:
        return BinaryCrossEntropy(smoothing=cfg.aug.smoothing)
    if mixup_active:
        return SoftTargetCrossEntropy()
    if cfg.aug.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.aug.smoothing)
    return nn.CrossEntropyLoss()


def _odd_batch_mixup_class():
    from timm.data import Mixup
    from timm.data.mixup import mixup_target

    class OddBatchMixup(Mixup):
        """timm's ``Mixup`` (mixup / CutMix) for any batch size. timm's asserts an even batch; here an odd batch
        (a last partial batch, or one left odd by skipped unreadable images) is mixed on its even part and its last
        sample keeps its own (label-smoothed) one-hot target. Even batches are exactly timm's."""

        def __call__(self, x, target):
            n = len(x)
            if n % 2 == 0:
                return super().__call__(x, target)
            last = mixup_target(target[-1:], self.num_classes, 1.0, self.label_smoothing)
            if n == 1:
                return x, last
            head, head_t = super().__call__(x[:-1], target[:-1])
            return torch.cat([head, x[-1:]]), torch.cat([head_t, last.to(head_t.dtype)])

    return OddBatchMixup


def build_mixup(cfg: TrainConfig, num_classes: int):
    """timm's Mixup / CutMix from the config (None when both are off), accepting odd batches."""
    if cfg.aug.mixup > 0 or cfg.aug.cutmix > 0:
        return _odd_batch_mixup_class()(
            mixup_alpha=cfg.aug.mixup, cutmix_alpha=cfg.aug.cutmix, prob=cfg.aug.mixup_prob,
            switch_prob=cfg.aug.mixup_switch_prob, mode=cfg.aug.mixup_mode, label_smoothing=cfg.aug.smoothing,
            num_classes=num_classes)
    return None


# ---------------------------------------------------------------- all of it

@dataclass
class TrainParts:
    """What a config makes for the loop, besides the model and the data."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    num_epochs: int
    model_ema: Any
    amp_dtype: Optional[torch.dtype]
    scaler: Any
    mixup_fn: Optional[Callable]
    loss_fn: nn.Module

    def state(self, run_model: nn.Module, cfg: TrainConfig, device: torch.device, num_updates: int = 0,
              dist: Optional[DistInfo] = None) -> TrainState:
        return TrainState(
            model=run_model, optimizer=self.optimizer, loss_fn=self.loss_fn, device=device, scheduler=self.scheduler,
            mixup_fn=self.mixup_fn, model_ema=self.model_ema, scaler=self.scaler, amp_dtype=self.amp_dtype,
            channels_last=cfg.loop.channels_last, grad_accum_steps=cfg.loop.grad_accum_steps,
            clip_grad=cfg.optim.clip_grad,
            clip_mode=cfg.optim.clip_mode, num_updates=num_updates, dist=dist or DistInfo(device=device))


def build_training(model: nn.Module, cfg: TrainConfig, num_classes: int, device: torch.device,
                   updates_per_epoch: int, world_size: int = 1) -> TrainParts:
    """Optimiser (lr for the global batch), scheduler, EMA, AMP, mixup and loss for ``model`` (already on
    ``device``), exactly as ``tools/train.py`` uses them."""
    optimizer = build_optimizer(model, cfg, world_size)
    amp_dtype, scaler = build_amp(cfg, device)
    model_ema = build_ema(model, cfg, device)
    scheduler, num_epochs = build_scheduler(optimizer, cfg, updates_per_epoch)
    mixup_fn = build_mixup(cfg, num_classes)
    loss_fn = build_loss(cfg, mixup_fn is not None).to(device)
    return TrainParts(optimizer, scheduler, num_epochs, model_ema, amp_dtype, scaler, mixup_fn, loss_fn)


def wrap_model(model: nn.Module, cfg: TrainConfig, dist: DistInfo) -> nn.Module:
    """The model the loop runs: DDP (under torchrun), then ``torch.compile`` (as timm's train.py)."""
    run_model = model
    if dist.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        run_model = (DDP(run_model, device_ids=[dist.device]) if dist.device.type == 'cuda'
                     else DDP(run_model))  # CPU/gloo: no device_ids
    if cfg.loop.torchcompile:
        run_model = torch.compile(run_model, backend=cfg.loop.torchcompile)
    return run_model
