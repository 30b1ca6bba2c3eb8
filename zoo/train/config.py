"""Training configuration: one flat dict of fields (timm ``train.py`` names), YAML files and command-line overrides.

Precedence: built-in defaults < ``--config file.yaml`` < command-line flags (``--lr 0.01``, every field has a flag,
``_`` written as ``-``) and ``--set key=value`` (value parsed as YAML, e.g. ``--set scale=[0.5,1.0]``), applied in
the order given. Unknown keys are an error that suggests the nearest field.

The fields come in sections (``SECTIONS``: model, data, augmentation, optimiser, schedule, loop, output), which
group ``--help``. timm's ``train.py`` / ``validate.py`` spellings of the same settings are aliases of the flags
(``FLAG_ALIASES``: ``-b``, ``-j``, ``--drop``, ``--drop-path``, ``-vb`` / ``--validation-batch-size``, ``--pin-mem``,
``--dr``, ``--train-batches-per-epoch``; ``--torchcompile`` alone means the inductor backend); the other shared
names (``--img-size``, ``--input-size``, ``--model-ema``, ``--sched``, ``--warmup-epochs``, ``--aa``, ``--reprob``,
``--pretrained-path``, ...) are the field names themselves. ``check_values`` checks types, choices and ranges.
"""
import argparse
import difflib
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml
from ..errors import UserError

__all__ = ['FIELDS', 'SECTIONS', 'FIELD_SECTION', 'FLAG_ALIASES', 'default_config', 'load_config',
           'apply_overrides', 'validate_config', 'check_values', 'add_config_args', 'config_from_args', 'given_fields',
           'ConfigError']


class ConfigError(UserError, ValueError):
    """Invalid configuration (unknown field, wrong type, bad value)."""


# the sections of ``--help`` (and of a config file, by convention), in order
SECTIONS = ('model', 'data', 'augmentation', 'optimiser', 'schedule', 'loop', 'output')

# name, default, type (None: take it from the default), help; a ``# <section>`` line starts each section
FIELDS: List[Tuple[str, Any, Any, str]] = [
    # model
    ('model', 'resnet18', str, 'any registered timm / zoo model name, or an hf-hub: / local-dir: id'),
    ('pretrained', False, bool, 'start from the pretrained weights (head re-initialised for a new class count)'),
    ('pretrained_path', '', str, "load this file as the model's pretrained weights (with the family's checkpoint "
                                 "filter and head adaptation, as pretrained=true); implies pretrained"),
    ('initial_checkpoint', '', str, 'load weights from this file first (a head of another class count is dropped)'),
    ('initial_checkpoint_ema', True, bool, 'from a checkpoint with EMA weights, load those'),
    ('add_attention', '', str, "'cbam' or 'triplet': add identity-initialised gates to the CNN once its weights are "
                               "loaded (zoo.add_attention; recorded in the checkpoints)"),
    ('add_attention_kwargs', {}, dict, 'options of the added gates (key=value ...), e.g. reduction=8 kernel_size=3'),
    ('num_classes', None, int, 'class count (default: from the training dataset; must agree with it)'),
    ('model_kwargs', {}, dict, 'extra keyword arguments for timm.create_model (key=value ...)'),
    ('drop_rate', 0.0, float, 'classifier dropout'),
    ('drop_path_rate', None, float, 'stochastic depth rate (models that support it)'),
    ('grad_checkpointing', False, bool, 'activation checkpointing (saves memory)'),
    # data
    ('dataset', 'shapes', str, "'shapes' (generated), 'folder' (data_dir/<split>/<class>/...) or 'list' (CSV/JSON)"),
    ('data_dir', '', str, 'dataset root (shapes: where to generate/cache; default ~/.cache/zoo/data/...)'),
    ('train_split', 'train', str, 'training folder under data_dir'),
    ('val_split', 'val', str, 'validation folder under data_dir (empty: no validation)'),
    ('train_list', '', str, 'list dataset: CSV/JSON of (path, label) for training'),
    ('val_list', '', str, 'list dataset: CSV/JSON of (path, label) for validation'),
    ('class_names', None, list, 'fixed class list (default: class folders / labels of the training set)'),
    ('shapes_train', 3000, int, 'shapes: training images'),
    ('shapes_val', 600, int, 'shapes: validation images'),
    ('shapes_size', 64, int, 'shapes: image size in pixels'),
    ('shapes_seed', 0, int, 'shapes: generator seed'),
    ('corrupt', 'skip', str, "unreadable images: 'skip' (report paths, count) or 'error' (stop)"),
    ('verify_images', False, bool, 'decode every image before training (reports and drops corrupt ones up front)'),
    ('workers', 2, int, 'data loader worker processes per rank'),
    ('pin_memory', False, bool, 'pin host memory (CUDA)'),
    ('img_size', None, int, 'input size (default: the model pretrained cfg)'),
    ('input_size', None, list, 'input size as C H W (overrides img_size)'),
    ('crop_pct', None, float, 'eval centre-crop fraction (default: the model pretrained cfg)'),
    ('crop_mode', None, str, "eval crop mode: 'center', 'squash' or 'border'"),
    ('interpolation', '', str, 'resize interpolation (default: the model pretrained cfg)'),
    ('mean', None, list, 'normalisation mean (default: the model pretrained cfg)'),
    ('std', None, list, 'normalisation std (default: the model pretrained cfg)'),
    # augmentation
    ('scale', [0.08, 1.0], list, 'RandomResizedCrop area range'),
    ('ratio', [0.75, 1.3333333333333333], list, 'RandomResizedCrop aspect-ratio range'),
    ('hflip', 0.5, float, 'horizontal flip probability'),
    ('vflip', 0.0, float, 'vertical flip probability'),
    ('color_jitter', 0.4, float, 'colour jitter strength (brightness/contrast/saturation; 0 = off)'),
    ('color_jitter_prob', 0.8, float, 'probability of colour jitter'),
    ('aa', None, str, "RandAugment-style policy, e.g. 'rand-m9-n2' (replaces colour jitter)"),
    ('reprob', 0.0, float, 'random erasing probability'),
    ('mixup', 0.0, float, 'mixup alpha (0 = off)'),
    ('cutmix', 0.0, float, 'cutmix alpha (0 = off)'),
    ('mixup_prob', 1.0, float, 'probability of applying mixup/cutmix to a batch'),
    ('mixup_switch_prob', 0.5, float, 'probability of cutmix instead of mixup when both are on'),
    ('mixup_mode', 'batch', str, "'batch', 'pair' or 'elem'"),
    ('smoothing', 0.1, float, 'label smoothing'),
    ('bce_loss', False, bool, 'binary cross-entropy instead of softmax cross-entropy'),
    # optimiser
    ('opt', 'adamw', str, 'timm optimizer name (adamw, sgd, lamb, ...)'),
    ('lr', None, float, 'learning rate (default: lr_base scaled by the global batch size)'),
    ('lr_base', 1e-3, float, 'learning rate for a global batch of lr_base_size'),
    ('lr_base_size', 256, int, 'reference batch size for lr_base'),
    ('lr_base_scale', '', str, "'linear' or 'sqrt' (default: sqrt for ada*/lamb, else linear)"),
    ('weight_decay', 0.05, float, 'weight decay'),
    ('momentum', 0.9, float, 'SGD momentum'),
    ('opt_eps', None, float, 'optimizer epsilon'),
    ('opt_betas', None, list, 'optimizer betas'),
    ('layer_decay', None, float, 'layer-wise learning-rate decay'),
    ('clip_grad', None, float, 'gradient clipping value (None = off)'),
    ('clip_mode', 'norm', str, "'norm', 'value' or 'agc'"),
    ('gate_lr_mult', 1.0, float, "learning rate of the CBAM / triplet modules' parameters (their own param groups) "
                                 'as a multiple of lr'),
    # schedule
    ('sched', 'cosine', str, "timm scheduler: 'cosine', 'step', 'multistep', 'plateau', 'poly', 'tanh', 'none'"),
    ('sched_on_updates', True, bool, 'update the learning rate every optimizer step (else every epoch)'),
    ('epochs', 10, int, 'training epochs'),
    ('warmup_epochs', 1, int, 'linear warm-up epochs'),
    ('warmup_lr', 1e-5, float, 'warm-up start learning rate'),
    ('warmup_prefix', False, bool, 'warm-up outside the decay schedule'),
    ('backbone_warmup_epochs', 0.0, float, 'the learning rate of every parameter outside the CBAM / triplet modules '
                                           '(of all, in a model without them) ramps linearly from 0 over these '
                                           'epochs, on top of the schedule'),
    ('min_lr', 1e-6, float, 'lowest learning rate'),
    ('cooldown_epochs', 0, int, 'epochs at min_lr after the schedule'),
    ('decay_epochs', 30, float, "'step': epochs between decays"),
    ('decay_milestones', [30, 60], list, "'multistep': decay epochs"),
    ('decay_rate', 0.1, float, 'step decay factor'),
    ('patience_epochs', 10, int, "'plateau': patience"),
    # loop
    ('batch_size', 64, int, 'batch size per process'),
    ('val_batch_size', None, int, 'validation batch size (default: 2 x batch_size)'),
    ('grad_accum_steps', 1, int, 'accumulate gradients over this many batches per optimizer step'),
    ('steps_per_epoch', 0, int, 'cap the batches per epoch (0 = the whole dataset)'),
    ('amp', False, bool, "automatic mixed precision; 'force' keeps it on hardware without native bf16 / fp16"),
    ('amp_dtype', '', str, "'bfloat16' or 'float16' (default: bfloat16 on CPU, float16 on CUDA)"),
    ('channels_last', False, bool, 'channels-last memory format'),
    ('torchcompile', None, str, "torch.compile backend, e.g. 'inductor' (None = eager)"),
    ('model_ema', False, bool, 'keep an exponential moving average of the weights'),
    ('model_ema_decay', 0.9998, float, 'EMA decay'),
    ('model_ema_warmup', False, bool, 'EMA decay warm-up'),
    ('sync_bn', False, bool, 'SyncBatchNorm under DDP'),
    ('dist_bn', 'reduce', str, "with DDP and no sync_bn, after each epoch: 'reduce' / 'broadcast' BN stats, or ''"),
    ('device', '', str, "'cpu', 'cuda', 'cuda:1' (default: cuda if available)"),
    ('seed', 42, int, 'random seed'),
    # output
    ('output', 'output/train', str, 'root of run folders'),
    ('experiment', '', str, 'run folder name (default: <date>-<time>-<model>-<size>; an existing run folder '
                            'gets a -N suffix)'),
    ('resume', '', str, "checkpoint to resume from (the run continues in its folder), or 'auto' "
                        "(output/experiment/last.pth if it exists)"),
    ('no_resume_opt', False, bool, 'resume weights only (not optimizer / scheduler / epoch)'),
    ('stop_after_epochs', 0, int, 'end this run after N epochs (time-limited jobs; resume continues it); 0 = off'),
    ('checkpoint_hist', 0, int, 'also keep the last N per-epoch checkpoints (last.pth and best.pth are always kept)'),
    ('eval_metric', 'top1', str, "metric that chooses best.pth: 'top1', 'top5' or 'loss'"),
    ('val_interval', 1, int, 'validate every N epochs (and after the last)'),
    ('log_interval', 50, int, 'log every N steps (0: only per epoch)'),
    ('progress', 'auto', str, "'bar' (tqdm), 'log' (log lines) or 'auto' (bar on a terminal)"),
    ('tensorboard', True, bool, 'write TensorBoard logs (if tensorboard is installed)'),
]

# the first field of each section (FIELDS is in section order)
_SECTION_START = {'model': 'model', 'dataset': 'data', 'scale': 'augmentation', 'opt': 'optimiser', 'sched': 'schedule',
                  'batch_size': 'loop', 'output': 'output'}
FIELD_SECTION: Dict[str, str] = {}
_sec = 'model'
for _name, *_ in FIELDS:
    _sec = _SECTION_START.get(_name, _sec)
    FIELD_SECTION[_name] = _sec
del _sec, _name

# timm's train.py / validate.py spellings of the same settings (accepted next to the zoo's --<field> flags)
FLAG_ALIASES: Dict[str, Tuple[str, ...]] = {
    'model': ('-m',), 'drop_rate': ('--drop',), 'drop_path_rate': ('--drop-path',), 'workers': ('-j',),
    'batch_size': ('-b',), 'val_batch_size': ('-vb', '--validation-batch-size'), 'pin_memory': ('--pin-mem',),
    'decay_rate': ('--dr',), 'steps_per_epoch': ('--train-batches-per-epoch', '--train-steps-per-epoch'),
}
# flags whose value is optional: ``--torchcompile`` alone means the inductor backend (as timm)
_OPTIONAL_VALUE = {'torchcompile': 'inductor'}
# boolean fields that also take one word: ``--amp force`` / ``amp: force``
_BOOL_WORDS = {'amp': 'force'}

_TYPES = {name: typ for name, _, typ, _ in FIELDS}
_CHOICES = {
    'dataset': ('shapes', 'folder', 'list'), 'corrupt': ('skip', 'error'), 'mixup_mode': ('batch', 'pair', 'elem'),
    'clip_mode': ('norm', 'value', 'agc'), 'amp_dtype': ('', 'bfloat16', 'float16'),
    'eval_metric': ('top1', 'top5', 'loss'), 'progress': ('auto', 'bar', 'log'),
    'lr_base_scale': ('', 'linear', 'sqrt'),
    'dist_bn': ('', 'reduce', 'broadcast'), 'crop_mode': (None, 'center', 'squash', 'border'),
    'add_attention': ('', 'cbam', 'triplet'),
}
# dict fields: ``--<field> key=value ...`` and ``--set <field>.key=value`` set one entry
_DICT_FIELDS = tuple(name for name, _, typ, _ in FIELDS if typ is dict)


def _dict_entry(key: str) -> Optional[Tuple[str, str]]:
    """``'model_kwargs.depth'`` -> ``('model_kwargs', 'depth')``; None for a plain field name."""
    field, dot, entry = key.partition('.')
    return (field, entry) if dot and field in _DICT_FIELDS else None


def default_config() -> Dict[str, Any]:
    """A fresh copy of every field at its default."""
    return json.loads(json.dumps({name: default for name, default, _, _ in FIELDS}))


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _TYPES, n=3)
    return ConfigError(f'unknown config field {key!r}' + (f'; did you mean {close}?' if close else ''))


def _coerce(key: str, value: Any) -> Any:
    if key not in _TYPES:
        raise _unknown(key)
    typ = _TYPES[key]
    if value is None:
        return None
    try:
        if typ is bool:
            if isinstance(value, str):
                low = value.lower()
                if low == _BOOL_WORDS.get(key):
                    return low
                if low in ('1', 'true', 'yes', 'on'):
                    return True
                if low in ('0', 'false', 'no', 'off', ''):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if typ is float:
            return float(value)
        if typ is str:
            return str(value)
        if typ is list:
            if isinstance(value, (list, tuple)):
                return list(value)
            return [value]
        if typ is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f'config field {key!r} expects {typ.__name__}, got {value!r}') from None
    return value


def _parse_value(key: str, raw: str) -> Any:
    """Parse a command-line value: YAML for numbers/lists/bools, verbatim for string fields."""
    if key in _TYPES and _TYPES[key] is str:
        raw = raw.strip()
        if raw in ('null', '~', 'None'):
            return None
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in '\'"':
            return raw[1:-1]
        return raw
    return yaml.safe_load(raw) if raw.strip() else ''


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[Any]) -> Dict[str, Any]:
    """Apply overrides in order: ``'key=value'`` strings (value parsed as YAML, verbatim for string fields) or
    ``(key, value)`` pairs; ``model_kwargs.<name>=value`` sets one model keyword (likewise for the other dict
    fields). Returns ``cfg`` (in place)."""
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


def load_config(path: Optional[str] = None, overrides: Sequence[str] = (),
                base: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Defaults (or ``base``), updated by a YAML file and ``key=value`` overrides; validated."""
    cfg = dict(base) if base is not None else default_config()
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f'{path}: expected a mapping of config fields')
        for k, v in data.items():
            cfg[k] = _coerce(k, v)
    apply_overrides(cfg, overrides)
    return validate_config(cfg)


_AT_LEAST_1 = ('epochs', 'batch_size', 'grad_accum_steps', 'val_interval', 'val_batch_size', 'img_size',
               'shapes_train', 'shapes_size', 'lr_base_size')
_AT_LEAST_0 = ('workers', 'steps_per_epoch', 'shapes_val', 'warmup_epochs', 'cooldown_epochs', 'checkpoint_hist',
               'stop_after_epochs', 'log_interval', 'mixup', 'cutmix', 'weight_decay', 'min_lr', 'warmup_lr',
               'model_ema_decay', 'clip_grad', 'lr', 'lr_base', 'gate_lr_mult', 'backbone_warmup_epochs')
_PROBABILITIES = ('hflip', 'vflip', 'color_jitter_prob', 'reprob', 'mixup_prob', 'mixup_switch_prob')
_FRACTIONS = ('smoothing', 'drop_rate', 'drop_path_rate')  # [0, 1)


def check_values(values: Dict[str, Any]) -> Dict[str, Any]:
    """Types, choices and ranges of the given fields (each on its own, no cross-field checks); returns them
    coerced. ``tools/eval.py`` checks its flags with this."""
    out = {k: _coerce(k, v) for k, v in values.items()}
    for k, v in out.items():
        if k in _CHOICES and v not in _CHOICES[k]:
            raise ConfigError(f'config field {k!r} must be one of {list(_CHOICES[k])}, got {v!r}')
        if v is None or isinstance(v, bool):
            continue
        if k in _AT_LEAST_1 and v < 1:
            raise ConfigError(f'config field {k!r} must be >= 1, got {v}')
        if k in _AT_LEAST_0 and v < 0:
            raise ConfigError(f'config field {k!r} must be >= 0, got {v}')
        if k in _PROBABILITIES and not 0 <= v <= 1:
            raise ConfigError(f'config field {k!r} is a probability (0 to 1), got {v}')
        if k in _FRACTIONS and not 0 <= v < 1:
            raise ConfigError(f'config field {k!r} must be in [0, 1), got {v}')
        if k in ('scale', 'ratio') and len(v) != 2:
            raise ConfigError(f'config field {k!r} needs two numbers, got {v}')
        if k in ('mean', 'std') and len(v) not in (1, 3):
            raise ConfigError(f'config field {k!r} needs 3 numbers (one per channel), got {v}')
        if k == 'input_size' and (len(v) != 3 or any(not isinstance(i, int) or i < 1 for i in v)):
            raise ConfigError(f'config field \'input_size\' is C H W (three positive integers), got {v}')
    return out


def validate_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Check types, choices and ranges of every field; fills missing fields with defaults."""
    full = default_config()
    full.update(check_values(cfg))
    check_values({k: full[k] for k in _CHOICES})
    if full['dataset'] == 'folder' and not full['data_dir']:
        raise ConfigError("dataset 'folder' needs data_dir (data_dir/<train_split>/<class>/<images>)")
    if full['dataset'] == 'list' and not full['train_list']:
        raise ConfigError("dataset 'list' needs train_list (a CSV/JSON of path,label)")
    return full


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
        if self.nargs == 0:
            items.append((key, option_string not in getattr(self, 'negative_flags', ())))
        elif key in _BOOL_WORDS:  # --amp, --amp force; any other word is the tool's positional argument
            items.append((key, values if values == _BOOL_WORDS[key] else True))
            namespace._overrides = items
            if values not in (True, _BOOL_WORDS[key]):
                positional = [a for a in parser._actions if not a.option_strings]
                if not positional:
                    parser.error(f'argument {option_string}: takes no value or {_BOOL_WORDS[key]!r}, got {values!r}')
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


def add_config_args(parser: argparse.ArgumentParser, fields: Optional[Iterable[str]] = None, *,
                    config_file: bool = True, defaults: Optional[Dict[str, Any]] = None,
                    nargs: Optional[Dict[str, Any]] = None, helps: Optional[Dict[str, str]] = None
                    ) -> Dict[str, argparse._ArgumentGroup]:
    """Add one flag per config field (``--no-<field>`` for booleans, timm's spellings as aliases), grouped by
    section, plus ``--config`` / ``--set`` unless ``config_file=False``. Returns ``{section: argument group}`` (a
    tool adds its own flags there).

    ``fields``: only these fields (e.g. ``tools/eval.py``'s); ``defaults`` / ``helps`` / ``nargs``: per-field
    default shown in the help, help text and nargs for a tool whose defaults differ. Values given on the command
    line are recorded in ``args._overrides`` in order; ``config_from_args`` (or ``given_fields``) reads them.
    """
    if config_file:
        parser.add_argument('-c', '--config', default=None, help='YAML file of config fields')
        parser.add_argument('--set', nargs='+', action=_SetAction, default=argparse.SUPPRESS, metavar='KEY=VALUE',
                            help='override any field, value parsed as YAML (e.g. --set epochs=5 scale=[0.5,1])')
    wanted = list(fields) if fields is not None else None
    if wanted is not None:
        unknown = [f for f in wanted if f not in _TYPES]
        if unknown:
            raise _unknown(unknown[0])
    defaults, nargs, helps = dict(defaults or {}), dict(nargs or {}), dict(helps or {})
    groups: Dict[str, argparse._ArgumentGroup] = {}
    for sec in SECTIONS:
        groups[sec] = parser.add_argument_group(sec)
    for name, default, typ, help_ in FIELDS:
        if wanted is not None and name not in wanted:
            continue
        group = groups[FIELD_SECTION[name]]
        flag = '--' + name.replace('_', '-')
        flags = [flag, *(a for a in FLAG_ALIASES.get(name, ()) if a != flag)]
        shown = defaults.get(name, default)
        help_ = f'{helps.get(name, help_)} [default: {shown!r}]'
        kw = dict(dest=name, action=_FieldAction, default=argparse.SUPPRESS, help=help_)
        if typ is bool:
            neg = f'--no-{name.replace("_", "-")}'
            if name in _BOOL_WORDS:
                group.add_argument(*flags, nargs='?', const=True, metavar=_BOOL_WORDS[name].upper(), **kw)
                action = group.add_argument(neg, nargs=0, **dict(kw, help=f'turn {flag} off'))
            else:
                action = group.add_argument(*flags, neg, nargs=0, **kw)
            action.negative_flags = (neg,)
        elif name in nargs:
            group.add_argument(*flags, nargs=nargs[name], metavar='V', **kw)
        elif typ in (list, dict):
            group.add_argument(*flags, nargs='+', metavar='V', **kw)
        elif name in _OPTIONAL_VALUE:
            group.add_argument(*flags, nargs='?', const=_OPTIONAL_VALUE[name], metavar='V', **kw)
        else:
            group.add_argument(*flags, metavar='V', **kw)
    return groups


def given_fields(args: argparse.Namespace) -> Dict[str, Any]:
    """The config fields given on the command line (``--field value`` / ``--set``), coerced, later ones winning;
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
            out[key] = value if isinstance(value, list) and _TYPES.get(key) is not list else _coerce(key, value)
    return out


def config_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """Build the validated config from parsed arguments (defaults < --config < flags / --set in order)."""
    return load_config(getattr(args, 'config', None), getattr(args, '_overrides', None) or [])
