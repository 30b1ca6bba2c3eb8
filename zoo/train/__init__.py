"""Classification training and evaluation (the logic behind ``tools/train.py`` and ``tools/eval.py``).

* ``config``: the settings of a run, declared once by section (``TrainConfig`` / ``EvalConfig``), YAML, flags;
* ``build``: the config turned into data, model, loaders, optimiser / schedule / EMA / AMP, mixup and loss;
* ``loop``: one epoch of training steps, evaluation;
* ``trainer``: ``train(cfg)`` / ``Trainer(cfg).fit()``, a full run (``outputs``: what it writes);
* ``validate(eval_config(...))``: top-1 / top-5 / loss / per-class accuracy / images/s;
* ``run_train_steps(model, batches, cfg)``: N steps of the real training loop on given batches (benchmarks).

The Hub layout of a trained model: :func:`zoo.hub.export.export`.
"""
from .build import build_datasets, build_training, load_initial_checkpoint
from .config import (ConfigError, EvalConfig, TrainConfig, add_config_args, config_from_args, default_config,
                     eval_config, load_config)
from .engine import run_train_steps
from .loop import NonFiniteLossError, TrainState, evaluate, train_one_epoch
from .trainer import Trainer, train
from .validate import load_model_for_eval, validate

__all__ = [
    'ConfigError', 'TrainConfig', 'EvalConfig', 'eval_config', 'add_config_args', 'config_from_args',
    'default_config', 'load_config', 'NonFiniteLossError',
    'TrainState', 'evaluate', 'run_train_steps', 'train_one_epoch', 'Trainer', 'build_datasets',
    'build_training', 'load_initial_checkpoint', 'train', 'load_model_for_eval', 'validate',
]
