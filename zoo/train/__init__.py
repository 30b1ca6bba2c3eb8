"""Classification training and evaluation (the logic behind ``tools/train.py`` and ``tools/eval.py``).

* ``train(cfg)`` / ``Trainer(cfg).fit()``: a full run from a config dict (``load_config`` / ``default_config``).
* ``validate(model_name, checkpoint, ...)``: top-1 / top-5 / loss / per-class accuracy / images/s.
* ``run_train_steps(model, batches, cfg)``: N steps of the real training loop on given batches (benchmarks).
* ``export_hf(model, out_dir, ...)``: the Hub layout (``config.json`` + ``model.safetensors``).
"""
from .config import ConfigError, add_config_args, config_from_args, default_config, load_config
from .engine import NonFiniteLossError, TrainState, evaluate, run_train_steps, train_one_epoch
from .export import export_hf
from .trainer import Trainer, build_datasets, load_initial_checkpoint, train
from .validate import load_model_for_eval, validate

__all__ = [
    'ConfigError', 'add_config_args', 'config_from_args', 'default_config', 'load_config', 'NonFiniteLossError',
    'TrainState', 'evaluate', 'run_train_steps', 'train_one_epoch', 'export_hf', 'Trainer', 'build_datasets',
    'load_initial_checkpoint', 'train', 'load_model_for_eval', 'validate',
]
