"""Classification training and evaluation (the logic behind ``tools/train.py`` and ``tools/eval.py``).

* ``config``: the fields of a run (timm ``train.py`` names), YAML files and command-line flags;
* ``build``: the config turned into data, model, loaders, optimiser / schedule / EMA / AMP, mixup and loss;
* ``loop``: one epoch of training steps, evaluation;
* ``trainer``: ``train(cfg)`` / ``Trainer(cfg).fit()``, a full run (``outputs``: what it writes);
* ``validate(model_name, checkpoint, ...)``: top-1 / top-5 / loss / per-class accuracy / images/s;
* ``run_train_steps(model, batches, cfg)``: N steps of the real training loop on given batches (benchmarks).

The Hub layout of a trained model: :func:`zoo.hub.export.export`.
"""
from .build import build_training, load_initial_checkpoint
from .config import ConfigError, add_config_args, config_from_args, default_config, load_config
from .engine import run_train_steps
from .loop import NonFiniteLossError, TrainState, evaluate, train_one_epoch
from .trainer import Trainer, build_datasets, train
from .validate import load_model_for_eval, validate

__all__ = [
    'ConfigError', 'add_config_args', 'config_from_args', 'default_config', 'load_config', 'NonFiniteLossError',
    'TrainState', 'evaluate', 'run_train_steps', 'train_one_epoch', 'Trainer', 'build_datasets',
    'build_training', 'load_initial_checkpoint', 'train', 'load_model_for_eval', 'validate',
]
