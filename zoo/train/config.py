"""Training and evaluation settings, each declared once in a typed section (type, default, choices / range, help,
timm spelling) and composed into ``TrainConfig`` (zoo-train) or ``EvalConfig`` (zoo-eval).

YAML files, ``--set key=value`` and the command-line flags are derived from the declarations; a config file and
``--set`` use the flat setting names (``lr``, ``batch_size``), code reads ``cfg.optim.lr``. Precedence: defaults <
``--config file.yaml`` < flags / ``--set`` in command-line order. An unknown name is an error suggesting the nearest
one; a misspelt attribute is an ``AttributeError`` (the sections are slotted dataclasses).
"""
import argparse
import copy
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml
from ..errors import ConfigError

__all__ = ['ModelCfg', 'DataCfg', 'AugCfg', 'OptimCfg', 'SchedCfg', 'LoopCfg', 'OutputCfg', 'EvalCfg', 'TrainConfig',
           'EvalConfig', 'Setting', 'SETTINGS', 'SECTIONS', 'default_config', 'load_config', 'apply_overrides',
           'check_values', 'add_config_args', 'add_eval_args', 'config_from_args', 'given_fields', 'eval_config',
           'ConfigError']


_SAME = object()


def setting(default: Any, help: str, *, alias: Sequence[str] = (), choices: Optional[Sequence[Any]] = None,
            check: str = '', word: str = '', const: Any = None, eval: bool = False, eval_default: Any = _SAME,
            eval_help: str = '', eval_nargs: str = '') -> Any:
    """One setting: its default and help, timm's flag spellings (``alias``), allowed values (``choices``) or a
    ``check`` ('>=0', '>=1', 'probability', 'fraction', 'pair', 'channels', 'chw'), ``word`` (a bool that also takes
    this word), ``const`` (the value of the flag given alone); ``eval``: also a zoo-eval flag, with ``eval_default``
    / ``eval_help`` / ``eval_nargs`` where zoo-eval differs."""
    meta = dict(help=help, alias=tuple(alias), choices=tuple(choices) if choices is not None else None, check=check,
                word=word, const=const, eval=eval, eval_default=eval_default, eval_help=eval_help,
                eval_nargs=eval_nargs)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def option(default: Any, help: str, *, flags: Sequence[str], group: str, negative: Sequence[str] = (),
           off_help: str = '', cli_default: Any = _SAME) -> Any:
    """A zoo-eval option that is no training setting: its flags (``negative``: those that turn a bool off, with
    ``off_help``), the ``--help`` group it is listed in and its default on the command line where that differs."""
    return field(default=default, metadata=dict(help=help, flags=tuple(flags), negative=tuple(negative), group=group,
                                                off_help=off_help,
                                                cli_default=default if cli_default is _SAME else cli_default))


@dataclass(slots=True)
class ModelCfg:
    TITLE: ClassVar[str] = 'model'
    model: str = setting('resnet18', 'any registered timm / zoo model name, or an hf-hub: / local-dir: id',
                         alias=('-m',), eval=True, eval_default=None,
                         eval_help='model name, hf-hub:<repo> or local-dir:<folder> (default: the arch recorded in '
                                   '--checkpoint)')
    pretrained: bool = setting(False, 'start from the pretrained weights (head re-initialised for a new class count)',
                               eval=True)
    pretrained_path: str = setting('', "load this file as the model's pretrained weights (with the family's "
                                       "checkpoint filter and head adaptation, as pretrained=true); implies pretrained")
    initial_checkpoint: str = setting('', 'load weights from this file first (a head of another class count is '
                                          'dropped)')
    initial_checkpoint_ema: bool = setting(True, 'from a checkpoint with EMA weights, load those')
    add_attention: str = setting('', "'cbam' or 'triplet': add identity-initialised gates to the CNN once its weights "
                                     "are loaded (zoo.add_attention; recorded in the checkpoints)",
                                 choices=('', 'cbam', 'triplet'))
    add_attention_kwargs: Dict[str, Any] = setting({}, 'options of the added gates (key=value ...), e.g. reduction=8 '
                                                       'kernel_size=3')
    num_classes: Optional[int] = setting(None, 'class count (default: from the training dataset; must agree with it)',
                                         eval=True, eval_help='class count (default: from the checkpoint)')
    model_kwargs: Dict[str, Any] = setting({}, 'extra keyword arguments for timm.create_model (key=value ...)',
                                           eval=True)
    drop_rate: float = setting(0.0, 'classifier dropout', alias=('--drop',), check='fraction')
    drop_path_rate: Optional[float] = setting(None, 'stochastic depth rate (models that support it)',
                                              alias=('--drop-path',), check='fraction')
    grad_checkpointing: bool = setting(False, 'activation checkpointing (saves memory)')


@dataclass(slots=True)
class DataCfg:
    TITLE: ClassVar[str] = 'data'
    dataset: str = setting('shapes', "'shapes' (generated), 'folder' (data_dir/<split>/<class>/...) or 'list' "
                                     "(CSV/JSON)", choices=('shapes', 'folder', 'list'), eval=True, eval_default=None,
                           eval_help="'shapes', 'folder' or 'list' (default: the checkpoint's training dataset, else "
                                     "shapes; a --data-dir that is an image folder is evaluated as one)")
    data_dir: str = setting('', 'dataset root (shapes: where to generate/cache; default ~/.cache/zoo/data/...)',
                            eval=True, eval_help='folder dataset root (data_dir/<split>/<class>/..., or '
                                                 'data_dir/<class>/...), list root, or the shapes cache folder')
    train_split: str = setting('train', 'training folder under data_dir')
    val_split: str = setting('val', 'validation folder under data_dir (empty: no validation)')
    train_list: str = setting('', 'list dataset: CSV/JSON of (path, label) for training')
    val_list: str = setting('', 'list dataset: CSV/JSON of (path, label) for validation')
    class_names: Optional[List[str]] = setting(None, 'fixed class list (default: class folders / labels of the '
                                                     'training set)',
                                               eval=True, eval_help='class list (default: from the checkpoint)')
    shapes_train: int = setting(3000, 'shapes: training images', check='>=1', eval_default=None)
    shapes_val: int = setting(600, 'shapes: validation images', check='>=0', eval=True, eval_default=None)
    shapes_size: int = setting(64, 'shapes: image size in pixels', check='>=1', eval=True, eval_default=None)
    shapes_seed: int = setting(0, 'shapes: generator seed', eval=True, eval_default=None)
    corrupt: str = setting('skip', "unreadable images: 'skip' (report paths, count) or 'error' (stop)",
                           choices=('skip', 'error'), eval=True)
    verify_images: bool = setting(False, 'decode every image before training (reports and drops corrupt ones up '
                                         'front)')
    workers: int = setting(2, 'data loader worker processes per rank', alias=('-j',), check='>=0', eval=True)
    pin_memory: bool = setting(False, 'pin host memory (CUDA)', alias=('--pin-mem',))
    img_size: Optional[int] = setting(None, 'input size (default: the model pretrained cfg)', check='>=1', eval=True,
                                      eval_help='test-time resolution: S or H W (default: the run / model pretrained '
                                                'cfg)', eval_nargs='+')
    input_size: Optional[List[int]] = setting(None, 'input size as C H W (overrides img_size)', check='chw',
                                              eval=True)
    crop_pct: Optional[float] = setting(None, 'eval centre-crop fraction (default: the model pretrained cfg)',
                                        eval=True)
    crop_mode: Optional[str] = setting(None, "eval crop mode: 'center', 'squash' or 'border'",
                                       choices=(None, 'center', 'squash', 'border'), eval=True)
    interpolation: str = setting('', 'resize interpolation (default: the model pretrained cfg)', eval=True,
                                 eval_default=None)
    mean: Optional[List[float]] = setting(None, 'normalisation mean (default: the model pretrained cfg)',
                                          check='channels', eval=True)
    std: Optional[List[float]] = setting(None, 'normalisation std (default: the model pretrained cfg)',
                                         check='channels', eval=True)


@dataclass(slots=True)
class AugCfg:
    TITLE: ClassVar[str] = 'augmentation'
    scale: List[float] = setting([0.08, 1.0], 'RandomResizedCrop area range', check='pair')
    ratio: List[float] = setting([0.75, 1.3333333333333333], 'RandomResizedCrop aspect-ratio range', check='pair')
    hflip: float = setting(0.5, 'horizontal flip probability', check='probability')
    vflip: float = setting(0.0, 'vertical flip probability', check='probability')
    color_jitter: float = setting(0.4, 'colour jitter strength (brightness/contrast/saturation; 0 = off)')
    color_jitter_prob: float = setting(0.8, 'probability of colour jitter', check='probability')
    aa: Optional[str] = setting(None, "RandAugment-style policy, e.g. 'rand-m9-n2' (replaces colour jitter)")
    reprob: float = setting(0.0, 'random erasing probability', check='probability')
    mixup: float = setting(0.0, 'mixup alpha (0 = off)', check='>=0')
    cutmix: float = setting(0.0, 'cutmix alpha (0 = off)', check='>=0')
    mixup_prob: float = setting(1.0, 'probability of applying mixup/cutmix to a batch', check='probability')
    mixup_switch_prob: float = setting(0.5, 'probability of cutmix instead of mixup when both are on',
                                       check='probability')
    mixup_mode: str = setting('batch', "'batch', 'pair' or 'elem'", choices=('batch', 'pair', 'elem'))
    smoothing: float = setting(0.1, 'label smoothing', check='fraction')
    bce_loss: bool = setting(False, 'binary cross-entropy instead of softmax cross-entropy')


@dataclass(slots=True)
class OptimCfg:
    TITLE: ClassVar[str] = 'optimiser'
    opt: str = setting('adamw', 'timm optimizer name (adamw, sgd, lamb, ...)')
    lr: Optional[float] = setting(None, 'learning rate (default: lr_base scaled by the global batch size)',
                                  check='>=0')
    lr_base: float = setting(1e-3, 'learning rate for a global batch of lr_base_size', check='>=0')
    lr_base_size: int = setting(256, 'reference batch size for lr_base', check='>=1')
    lr_base_scale: str = setting('', "'linear' or 'sqrt' (default: sqrt for ada*/lamb, else linear)",
                                 choices=('', 'linear', 'sqrt'))
    weight_decay: float = setting(0.05, 'weight decay', check='>=0')
    momentum: float = setting(0.9, 'SGD momentum')
    opt_eps: Optional[float] = setting(None, 'optimizer epsilon')
    opt_betas: Optional[List[float]] = setting(None, 'optimizer betas')
    layer_decay: Optional[float] = setting(None, 'layer-wise learning-rate decay')
    clip_grad: Optional[float] = setting(None, 'gradient clipping value (None = off)', check='>=0')
    clip_mode: str = setting('norm', "'norm', 'value' or 'agc'", choices=('norm', 'value', 'agc'))
    gate_lr_mult: float = setting(1.0, "learning rate of the CBAM / triplet modules' parameters (their own param "
                                       "groups) as a multiple of lr", check='>=0')


@dataclass(slots=True)
class SchedCfg:
    TITLE: ClassVar[str] = 'schedule'
    sched: str = setting('cosine', "timm scheduler: 'cosine', 'step', 'multistep', 'plateau', 'poly', 'tanh', 'none'")
    sched_on_updates: bool = setting(True, 'update the learning rate every optimizer step (else every epoch)')
    epochs: int = setting(10, 'training epochs', check='>=1')
    warmup_epochs: int = setting(1, 'linear warm-up epochs', check='>=0')
    warmup_lr: float = setting(1e-5, 'warm-up start learning rate', check='>=0')
    warmup_prefix: bool = setting(False, 'warm-up outside the decay schedule')
    backbone_warmup_epochs: float = setting(0.0, 'the learning rate of every parameter outside the CBAM / triplet '
                                                 'modules (of all, in a model without them) ramps linearly from 0 '
                                                 'over these epochs, on top of the schedule', check='>=0')
    min_lr: float = setting(1e-6, 'lowest learning rate', check='>=0')
    cooldown_epochs: int = setting(0, 'epochs at min_lr after the schedule', check='>=0')
    decay_epochs: float = setting(30, "'step': epochs between decays")
    decay_milestones: List[int] = setting([30, 60], "'multistep': decay epochs")
    decay_rate: float = setting(0.1, 'step decay factor', alias=('--dr',))
    patience_epochs: int = setting(10, "'plateau': patience")


@dataclass(slots=True)
class LoopCfg:
    TITLE: ClassVar[str] = 'loop'
    batch_size: int = setting(64, 'batch size per process', alias=('-b',), check='>=1', eval=True, eval_default=128)
    val_batch_size: Optional[int] = setting(None, 'validation batch size (default: 2 x batch_size)',
                                            alias=('-vb', '--validation-batch-size'), check='>=1')
    grad_accum_steps: int = setting(1, 'accumulate gradients over this many batches per optimizer step', check='>=1')
    steps_per_epoch: int = setting(0, 'cap the batches per epoch (0 = the whole dataset)',
                                   alias=('--train-batches-per-epoch', '--train-steps-per-epoch'), check='>=0')
    amp: Union[bool, str] = setting(False, "automatic mixed precision; 'force' keeps it on hardware without native "
                                           "bf16 / fp16", word='force', eval=True)
    amp_dtype: str = setting('', "'bfloat16' or 'float16' (default: bfloat16 on CPU, float16 on CUDA)",
                             choices=('', 'bfloat16', 'float16'), eval=True)
    channels_last: bool = setting(False, 'channels-last memory format', eval=True)
    torchcompile: Optional[str] = setting(None, "torch.compile backend, e.g. 'inductor' (None = eager)",
                                          const='inductor', eval=True)
    model_ema: bool = setting(False, 'keep an exponential moving average of the weights')
    model_ema_decay: float = setting(0.9998, 'EMA decay', check='>=0')
    model_ema_warmup: bool = setting(False, 'EMA decay warm-up')
    sync_bn: bool = setting(False, 'SyncBatchNorm under DDP')
    dist_bn: str = setting('reduce', "with DDP and no sync_bn, after each epoch: 'reduce' / 'broadcast' BN stats, "
                                     "or ''", choices=('', 'reduce', 'broadcast'))
    device: str = setting('', "'cpu', 'cuda', 'cuda:1' (default: cuda if available)", eval=True)
    seed: int = setting(42, 'random seed')


@dataclass(slots=True)
class OutputCfg:
    TITLE: ClassVar[str] = 'output'
    output: str = setting('output/train', 'root of run folders')
    experiment: str = setting('', 'run folder name (default: <date>-<time>-<model>-<size>; an existing run folder '
                                  'gets a -N suffix)')
    resume: str = setting('', "checkpoint to resume from (the run continues in its folder), or 'auto' "
                              "(output/experiment/last.pth if it exists)")
    no_resume_opt: bool = setting(False, 'resume weights only (not optimizer / scheduler / epoch)')
    stop_after_epochs: int = setting(0, 'end this run after N epochs (time-limited jobs; resume continues it); '
                                        '0 = off', check='>=0')
    checkpoint_hist: int = setting(0, 'also keep the last N per-epoch checkpoints (last.pth and best.pth are always '
                                      'kept)', check='>=0')
    eval_metric: str = setting('top1', "metric that chooses best.pth: 'top1', 'top5' or 'loss'",
                               choices=('top1', 'top5', 'loss'))
    val_interval: int = setting(1, 'validate every N epochs (and after the last)', check='>=1')
    log_interval: int = setting(50, 'log every N steps (0: only per epoch)', check='>=0')
    progress: str = setting('auto', "'bar' (tqdm), 'log' (log lines) or 'auto' (bar on a terminal)",
                            choices=('auto', 'bar', 'log'))
    tensorboard: bool = setting(True, 'write TensorBoard logs (if tensorboard is installed)')


@dataclass(slots=True)
class EvalCfg:
    """zoo-eval's own options (timm ``validate.py`` names)."""
    checkpoint: Optional[str] = option(None, 'weights: a tools/train.py checkpoint, timm checkpoint or .safetensors',
                                       flags=('--checkpoint',), group='model')
    use_ema: bool = option(True, 'from a checkpoint with EMA weights, evaluate those (the default)',
                           flags=('--use-ema',), group='model', negative=('--no-ema', '--no-use-ema'),
                           off_help='from a checkpoint with EMA weights, evaluate the raw weights')
    split: str = option('val', 'folder under --data-dir ("" for data_dir/<class>/...)', flags=('--split',),
                        group='data')
    list_file: str = option('', 'CSV/JSON list of path,label', flags=('--list',), group='data')
    use_test_size: bool = option(False, "the pretrained cfg's test_input_size", flags=('--use-test-size',),
                                 group='data')
    output: str = option('', 'write the results JSON here (default: print only)',
                         flags=('--output', '--results-file'), group='output')
    progress: bool = option(False, 'a progress bar (zoo-eval: on a terminal, unless --no-progress)', flags=(),
                            group='output', negative=('--no-progress',), off_help='no progress bar', cli_default=True)


@dataclass(frozen=True)
class Setting:
    """One declared setting: its flat name, the ``TrainConfig`` attribute of its section, its value type (bool,
    int, float, str, list or dict) and the declaration's field (default, metadata)."""
    name: str
    section: str
    kind: type
    spec: Any

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.spec.metadata

    def default(self, for_eval: bool = False) -> Any:
        if for_eval and self.meta['eval_default'] is not _SAME:
            return self.meta['eval_default']
        f = self.spec
        return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _kind(annotation: Any) -> type:
    origin = typing.get_origin(annotation)
    if origin is Union:  # Optional[X] is X; Union[bool, str] (a bool that also takes a word) is bool
        return _kind(next(a for a in typing.get_args(annotation) if a is not type(None)))
    return {list: list, dict: dict}.get(origin, annotation)


_TRAIN_SECTIONS = (('model', ModelCfg), ('data', DataCfg), ('aug', AugCfg), ('optim', OptimCfg),
                   ('sched', SchedCfg), ('loop', LoopCfg), ('output', OutputCfg))
# the sections of ``--help``, in order
SECTIONS = tuple(cls.TITLE for _, cls in _TRAIN_SECTIONS)


def _declared(sections) -> Dict[str, Setting]:
    out: Dict[str, Setting] = {}
    for attr, cls in sections:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out[f.name] = Setting(f.name, attr, _kind(hints[f.name]), f)
    return out


# every setting by its flat name, in declaration (and config.yaml) order
SETTINGS: Dict[str, Setting] = _declared(_TRAIN_SECTIONS)
_DICT_FIELDS = tuple(n for n, s in SETTINGS.items() if s.kind is dict)
_CHOICE_FIELDS = tuple(n for n, s in SETTINGS.items() if s.meta['choices'] is not None)


def _build(sections, values: Mapping[str, Any]) -> Dict[str, Any]:
    """``{section attribute: section object}`` from flat values."""
    by_section: Dict[str, Dict[str, Any]] = {attr: {} for attr, _ in sections}
    for name, value in values.items():
        by_section[SETTINGS[name].section][name] = value
    return {attr: cls(**by_section[attr]) for attr, cls in sections}


def _flat(cfg: Any, sections) -> Dict[str, Any]:
    return {name: copy.deepcopy(getattr(getattr(cfg, s.section), name)) for name, s in SETTINGS.items()
            if any(s.section == attr for attr, _ in sections)}


@dataclass(slots=True)
class TrainConfig:
    """A training run's settings, by section: ``cfg.optim.lr``, ``cfg.loop.batch_size``."""
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    aug: AugCfg = field(default_factory=AugCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    sched: SchedCfg = field(default_factory=SchedCfg)
    loop: LoopCfg = field(default_factory=LoopCfg)
    output: OutputCfg = field(default_factory=OutputCfg)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'TrainConfig':
        """Flat ``{name: value}`` (missing names at their defaults): types, choices, ranges and the data source
        checked."""
        full = {name: s.default() for name, s in SETTINGS.items()}
        full.update(check_values(values))
        check_values({k: full[k] for k in _CHOICE_FIELDS})
        if full['dataset'] == 'folder' and not full['data_dir']:
            raise ConfigError("dataset 'folder' needs data_dir (data_dir/<train_split>/<class>/<images>)")
        if full['dataset'] == 'list' and not full['train_list']:
            raise ConfigError("dataset 'list' needs train_list (a CSV/JSON of path,label)")
        return cls(**_build(_TRAIN_SECTIONS, full))

    @classmethod
    def of(cls, cfg: Union['TrainConfig', Mapping[str, Any], None]) -> 'TrainConfig':
        """A checked copy of a config, or one from flat values (a checkpoint's ``config``)."""
        return cls.from_dict(cfg.to_dict() if isinstance(cfg, TrainConfig) else dict(cfg or {}))

    def to_dict(self) -> Dict[str, Any]:
        """Flat ``{name: value}`` in declaration order (``config.yaml``, the checkpoints' ``config``)."""
        return _flat(self, _TRAIN_SECTIONS)

    def replace(self, **values: Any) -> 'TrainConfig':
        """A copy with these settings (flat names) changed, unchecked."""
        new = copy.deepcopy(self)
        for name, value in values.items():
            if name not in SETTINGS:
                raise _unknown(name)
            setattr(getattr(new, SETTINGS[name].section), name, value)
        return new


def default_config() -> TrainConfig:
    """Every setting at its default."""
    return TrainConfig()


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, SETTINGS, n=3)
    return ConfigError(f'unknown config field {key!r}' + (f'; did you mean {close}?' if close else ''))


def _dict_entry(key: str) -> Optional[Tuple[str, str]]:
    """``'model_kwargs.depth'`` -> ``('model_kwargs', 'depth')``; None for a plain field name."""
    name, dot, entry = key.partition('.')
    return (name, entry) if dot and name in _DICT_FIELDS else None


def _to_bool(key: str, value: Any) -> Any:
    if isinstance(value, str):
        low = value.lower()
        if low and low == SETTINGS[key].meta['word']:
            return low
        if low in ('1', 'true', 'yes', 'on'):
            return True
        if low in ('0', 'false', 'no', 'off', ''):
            return False
        raise ValueError(value)
    return bool(value)


def _to_kind(key: str, typ: type, value: Any) -> Any:
    if typ is bool:
        return _to_bool(key, value)
    if typ is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if typ in (float, str):
        return typ(value)
    if typ is list:
        return list(value) if isinstance(value, (list, tuple)) else [value]
    if typ is dict:
        if not isinstance(value, dict):
            raise ValueError(value)
        return dict(value)
    return value


def _coerce(key: str, value: Any) -> Any:
    if key not in SETTINGS:
        raise _unknown(key)
    if value is None:
        return None
    typ = SETTINGS[key].kind
    try:
        return _to_kind(key, typ, value)
    except (TypeError, ValueError):
        raise ConfigError(f'config field {key!r} expects {typ.__name__}, got {value!r}') from None


def _parse_value(key: str, raw: str) -> Any:
    """Parse a command-line value: YAML for numbers/lists/bools, verbatim for string fields."""
    if key in SETTINGS and SETTINGS[key].kind is str:
        raw = raw.strip()
        if raw in ('null', '~', 'None'):
            return None
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in '\'"':
            return raw[1:-1]
        return raw
    return yaml.safe_load(raw) if raw.strip() else ''


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[Any]) -> Dict[str, Any]:
    """Apply overrides to flat values in order: ``'key=value'`` strings (value parsed as YAML, verbatim for string
    fields) or ``(key, value)`` pairs; ``model_kwargs.<name>=value`` sets one entry of a dict field. Returns
    ``cfg`` (in place)."""
    for item in overrides:
        if isinstance(item, str):
            if '=' not in item:
                raise ConfigError(f'--set expects key=value, got {item!r}')
            key, raw = item.split('=', 1)
            key = key.strip().replace('-', '_')
            entry = _dict_entry(key)
            value = _parse_value(entry[0] if entry else key, raw)
        else:
            key, value = item
        entry = _dict_entry(key)
        if entry:
            cfg[entry[0]] = dict(cfg.get(entry[0]) or {})
            cfg[entry[0]][entry[1]] = value
            continue
        cfg[key] = _coerce(key, value)
    return cfg


def load_config(path: Optional[str] = None, overrides: Sequence[Any] = (),
                base: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """Defaults (or flat ``base`` values), updated by a YAML file and ``key=value`` overrides; checked."""
    cfg = dict(base) if base is not None else default_config().to_dict()
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f'{path}: expected a mapping of config fields')
        for k, v in data.items():
            cfg[k] = _coerce(k, v)
    apply_overrides(cfg, overrides)
    return TrainConfig.from_dict(cfg)


def _check_range(k: str, check: str, v: Any) -> None:
    if check == '>=1' and v < 1:
        raise ConfigError(f'config field {k!r} must be >= 1, got {v}')
    if check == '>=0' and v < 0:
        raise ConfigError(f'config field {k!r} must be >= 0, got {v}')
    if check == 'probability' and not 0 <= v <= 1:
        raise ConfigError(f'config field {k!r} is a probability (0 to 1), got {v}')
    if check == 'fraction' and not 0 <= v < 1:
        raise ConfigError(f'config field {k!r} must be in [0, 1), got {v}')
    if check == 'pair' and len(v) != 2:
        raise ConfigError(f'config field {k!r} needs two numbers, got {v}')
    if check == 'channels' and len(v) not in (1, 3):
        raise ConfigError(f'config field {k!r} needs 3 numbers (one per channel), got {v}')
    if check == 'chw' and (len(v) != 3 or any(not isinstance(i, int) or i < 1 for i in v)):
        raise ConfigError(f'config field \'input_size\' is C H W (three positive integers), got {v}')


def check_values(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Types, choices and ranges of the given flat values (each on its own, no cross-field checks); returns them
    coerced."""
    out = {k: _coerce(k, v) for k, v in values.items()}
    for k, v in out.items():
        meta = SETTINGS[k].meta
        if meta['choices'] is not None and v not in meta['choices']:
            raise ConfigError(f'config field {k!r} must be one of {list(meta["choices"])}, got {v!r}')
        if v is not None and not isinstance(v, bool) and meta['check']:
            _check_range(k, meta['check'], v)
    return out


# ---------------------------------------------------------------- zoo-eval: the model, data and loop sections

_EVAL_SECTIONS = (('model', ModelCfg), ('data', DataCfg), ('loop', LoopCfg))


@dataclass(slots=True)
class EvalConfig:
    """What ``validate`` evaluates: the training sections (unset: from the checkpoint's run or the model's
    pretrained cfg; zoo-eval's own defaults where declared) and zoo-eval's options."""
    model: ModelCfg
    data: DataCfg
    loop: LoopCfg
    eval: EvalCfg = field(default_factory=EvalCfg)


_EVAL_OPTIONS = tuple(f.name for f in dataclasses.fields(EvalCfg))


def eval_config(**values: Any) -> EvalConfig:
    """An ``EvalConfig`` from flat setting names (``model``, ``workers``, ``shapes_val``, ...; checked as on the
    command line, ``img_size`` may be ``(H, W)``) and ``EvalCfg`` options (``checkpoint``, ``split``, ...)."""
    options = {k: values.pop(k) for k in _EVAL_OPTIONS if k in values}
    img_size = values.pop('img_size', None)
    full = {name: s.default(for_eval=True) for name, s in SETTINGS.items()
            if any(s.section == attr for attr, _ in _EVAL_SECTIONS)}
    for k in values:
        if k not in full:
            raise _unknown(k)
    full.update(check_values(values), img_size=img_size)
    return EvalConfig(**_build(_EVAL_SECTIONS, full), eval=EvalCfg(**options))


# ---------------------------------------------------------------- command-line flags

class _SetAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, '_overrides', None) or []
        items.extend(values)
        namespace._overrides = items


class _FieldAction(argparse.Action):
    """Records ``--field value`` as an ordered override (so flags and --set apply in command-line order)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, '_overrides', None) or []
        key = self.dest
        word = SETTINGS[key].meta['word']
        if self.nargs == 0:
            items.append((key, option_string not in getattr(self, 'negative_flags', ())))
        elif word:  # --amp, --amp force; any other word is the tool's positional argument
            items.append((key, values if values == word else True))
            namespace._overrides = items
            if values not in (True, word):
                positional = [a for a in parser._actions if not a.option_strings]
                if not positional:
                    parser.error(f'argument {option_string}: takes no value or {word!r}, got {values!r}')
                positional[0](parser, namespace, values)
        elif key in _DICT_FIELDS:
            for kv in values:
                if '=' not in kv:
                    raise argparse.ArgumentError(self, f'expected key=value, got {kv!r}')
                items.append(f'{key}.{kv}')
        elif isinstance(values, list):
            items.append((key, [yaml.safe_load(v) for v in values]))
        else:
            items.append((key, _parse_value(key, values)))
        namespace._overrides = items


def _add_flag(group, s: Setting, for_eval: bool) -> None:
    """``--<name>`` (``--no-<name>`` for a bool) and timm's spellings, recorded by ``_FieldAction``."""
    meta, name = s.meta, s.name
    flag = '--' + name.replace('_', '-')
    flags = [flag, *(a for a in meta['alias'] if a != flag)]
    help_ = (for_eval and meta['eval_help']) or meta['help']
    kw = dict(dest=name, action=_FieldAction, default=argparse.SUPPRESS,
              help=f'{help_} [default: {s.default(for_eval)!r}]')
    nargs = for_eval and meta['eval_nargs']
    if s.kind is bool:
        neg = f'--no-{name.replace("_", "-")}'
        if meta['word']:
            group.add_argument(*flags, nargs='?', const=True, metavar=meta['word'].upper(), **kw)
            action = group.add_argument(neg, nargs=0, **dict(kw, help=f'turn {flag} off'))
        else:
            action = group.add_argument(*flags, neg, nargs=0, **kw)
        action.negative_flags = (neg,)
    elif nargs:
        group.add_argument(*flags, nargs=nargs, metavar='V', **kw)
    elif s.kind in (list, dict):
        group.add_argument(*flags, nargs='+', metavar='V', **kw)
    elif meta['const'] is not None:
        group.add_argument(*flags, nargs='?', const=meta['const'], metavar='V', **kw)
    else:
        group.add_argument(*flags, metavar='V', **kw)


def _groups(parser: argparse.ArgumentParser) -> Dict[str, Any]:
    return {title: parser.add_argument_group(title) for title in SECTIONS}


def add_config_args(parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """zoo-train's flags: ``--config`` / ``--set`` and one flag per setting (``--no-<name>`` for booleans, timm's
    spellings as aliases), grouped by section. Returns ``{section title: argument group}`` (a tool adds its own
    flags there). Values given are recorded in ``args._overrides`` in order (``config_from_args`` reads them)."""
    parser.add_argument('-c', '--config', default=None, help='YAML file of config fields')
    parser.add_argument('--set', nargs='+', action=_SetAction, default=argparse.SUPPRESS, metavar='KEY=VALUE',
                        help='override any field, value parsed as YAML (e.g. --set epochs=5 scale=[0.5,1])')
    groups = _groups(parser)
    titles = dict(_TRAIN_SECTIONS)
    for s in SETTINGS.values():
        _add_flag(groups[titles[s.section].TITLE], s, for_eval=False)
    return groups


def add_eval_args(parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """zoo-eval's flags: the settings marked ``eval`` (zoo-eval's defaults and help where declared; ``given_fields``
    reads them) and the ``EvalCfg`` options (plain ``args.<name>``)."""
    groups = _groups(parser)
    titles = dict(_TRAIN_SECTIONS)
    for s in SETTINGS.values():
        if s.meta['eval']:
            _add_flag(groups[titles[s.section].TITLE], s, for_eval=True)
    for f in dataclasses.fields(EvalCfg):
        meta, group = f.metadata, groups[f.metadata['group']]
        if f.type is bool:
            if meta['flags']:
                group.add_argument(*meta['flags'], dest=f.name, action='store_true', help=meta['help'])
            if meta['negative']:
                group.add_argument(*meta['negative'], dest=f.name, action='store_false', help=meta['off_help'])
        else:
            group.add_argument(*meta['flags'], dest=f.name, help=meta['help'])
        parser.set_defaults(**{f.name: meta['cli_default']})
    return groups


def given_fields(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings given on the command line (``--field value`` / ``--set``), coerced, later ones winning;
    ``model_kwargs.<k>`` entries are merged into ``model_kwargs`` (likewise for the other dict fields)."""
    out: Dict[str, Any] = {}
    for item in getattr(args, '_overrides', None) or []:
        if isinstance(item, str):
            key, raw = item.split('=', 1) if '=' in item else (item, '')
            key = key.strip().replace('-', '_')
            entry = _dict_entry(key)
            if entry:
                out.setdefault(entry[0], {})[entry[1]] = _parse_value(entry[0], raw)
                continue
            out[key] = _coerce(key, _parse_value(key, raw))
        else:
            key, value = item
            out[key] = value if isinstance(value, list) and SETTINGS[key].kind is not list else _coerce(key, value)
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The checked config from parsed arguments (defaults < --config < flags / --set in order)."""
    return load_config(getattr(args, 'config', None), getattr(args, '_overrides', None) or [])
