"""tools/train.py / tools/eval.py (zoo.cli.train / zoo.cli.eval): timm's flag spellings, grouped --help, an
ImageFolder --data-dir, one-line user errors (exit 2, no traceback, nothing written; also zoo-push, zoo-convert and
zoo-demo), odd batches with mixup."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from zoo.cli import eval as cli_eval
from zoo.cli import train as cli_train
from zoo.train import load_config

REPO = Path(__file__).resolve().parent.parent
TINY = ['--model', 'resnet10t', '--img-size', '16', '--epochs', '1', '--warmup-epochs', '0', '--lr', '1e-3',
        '-j', '0', '--log-interval', '0', '--no-tensorboard', '--progress', 'log']


def _images(folder, n, size=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f'{i}.png'), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def _tree(root, splits=('train', 'val'), classes=('a', 'b'), n=4):
    for split in splits:
        for c in classes:
            _images(root / split / c if split else root / c, n)
    return root


def _cfg(argv):
    args = cli_train.build_parser().parse_args(argv)
    return load_config(args.config, getattr(args, '_overrides', None) or [])


def _user_error(capsys, main, argv):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's errors exit from inside parse_args (zoo.cli.ArgumentParser: status 2)
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.splitlines()[-1].startswith('error: ') and 'Traceback' not in err, err
    return err.splitlines()[-1]


# ---------------------------------------------------------------- flags and help

def test_timm_flag_spellings_map_to_the_config_fields():
    cfg = _cfg(['-b', '7', '-j', '3', '--drop', '0.1', '--drop-path', '0.2', '-vb', '5', '--torchcompile',
                '--pin-mem', '--img-size', '32', '--model-ema', '--sched', 'step', '--warmup-epochs', '0',
                '--aa', 'rand-m9-n2', '--reprob', '0.25', '--pretrained-path', 'w.pth', '--dr', '0.5',
                '--no-resume-opt', '--train-batches-per-epoch', '4', '-m', 'resnet10t', '/data/flowers'])
    assert (cfg.loop.batch_size, cfg.data.workers, cfg.model.drop_rate, cfg.model.drop_path_rate) == (7, 3, 0.1, 0.2)
    assert cfg.loop.val_batch_size == 5 and cfg.loop.torchcompile == 'inductor' and cfg.data.pin_memory is True
    assert cfg.data.img_size == 32 and cfg.loop.model_ema is True and cfg.sched.sched == 'step'
    assert cfg.sched.warmup_epochs == 0 and cfg.aug.aa == 'rand-m9-n2' and cfg.aug.reprob == 0.25
    assert cfg.model.pretrained_path == 'w.pth' and cfg.sched.decay_rate == 0.5 and cfg.output.no_resume_opt is True
    assert cfg.loop.steps_per_epoch == 4 and cfg.model.model == 'resnet10t' and cfg.data.data_dir == '/data/flowers'
    # the zoo's own names still work, and later flags win
    cfg = _cfg(['--batch-size', '8', '--torchcompile', 'eager', '--validation-batch-size', '9', '--input-size',
                '3', '40', '48', '--drop-path-rate', '0.3', '-b', '6', '--no-pin-memory'])
    assert cfg.loop.batch_size == 6 and cfg.loop.torchcompile == 'eager' and cfg.loop.val_batch_size == 9
    assert cfg.data.input_size == [3, 40, 48] and cfg.model.drop_path_rate == 0.3 and cfg.data.pin_memory is False
    assert _cfg([]).output.no_resume_opt is False and _cfg(['--no-no-resume-opt']).output.no_resume_opt is False


def test_help_is_grouped_by_section(capsys):
    with pytest.raises(SystemExit) as e:
        cli_train.main(['--help'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    heads = [out.index(f'\n{s}:\n') for s in ('model', 'data', 'augmentation', 'optimiser', 'schedule', 'loop',
                                              'output')]
    assert heads == sorted(heads)
    section = lambda name: out[out.index(f'\n{name}:\n'):]  # noqa: E731
    assert '--drop-path-rate V, --drop-path V' in section('model').split('\ndata:\n')[0]
    assert '--mixup V' in section('augmentation').split('\noptimiser:\n')[0]
    assert '--torchcompile [V]' in section('loop')
    with pytest.raises(SystemExit):
        cli_eval.main(['--help'])
    out = capsys.readouterr().out
    for flag in ('--checkpoint', '--use-ema', '--results-file', '-b V', '--img-size V [V ...]', '--crop-pct'):
        assert flag in out, flag


def test_eval_flags_are_the_training_fields():
    args = cli_eval.build_parser().parse_args(['-m', 'resnet10t', '-b', '4', '-j', '0', '--img-size', '40', '48',
                                               '--crop-pct', '1.0', '--use-ema', '--results-file', 'r.json'])
    from zoo.train.config import given_fields
    given = given_fields(args)
    assert given == dict(model='resnet10t', batch_size=4, workers=0, img_size=[40, 48], crop_pct=1.0)
    assert args.use_ema is True and args.output == 'r.json'
    assert cli_eval.build_parser().parse_args(['--no-ema']).use_ema is False


def test_no_hub_progress_switch_in_the_tools(monkeypatch):
    for f in ('zoo/cli/train.py', 'zoo/cli/eval.py', 'tools/train.py', 'tools/eval.py'):
        src = (REPO / f).read_text()
        assert "setdefault('HF_HUB_DISABLE_PROGRESS_BARS'" not in src, f
    monkeypatch.delenv('HF_HUB_DISABLE_PROGRESS_BARS', raising=False)
    assert cli_train.build_parser().parse_args(['--quiet']).quiet is True


# ---------------------------------------------------------------- user errors: one line, exit 2, nothing written

def test_train_user_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / 'out'
    (out / 'exp').mkdir(parents=True)
    (out / 'exp' / 'last.pth').write_bytes(b'an existing run')
    base = TINY + ['--output', str(out), '--experiment', 'exp']
    data = _tree(tmp_path / 'data')
    line = _user_error(capsys, cli_train.main, base + ['--model', 'resnet10tt', '--data-dir', str(data)])
    assert "unknown model 'resnet10tt'" in line and 'resnet10t' in line
    line = _user_error(capsys, cli_train.main, base + ['--dataset', 'folder', '--data-dir', str(tmp_path / 'nope')])
    assert 'does not exist' in line and 'nope' in line
    _images(tmp_path / 'flat', 2)
    line = _user_error(capsys, cli_train.main, base + ['--data-dir', str(tmp_path / 'flat')])
    assert 'neither an image folder' in line
    line = _user_error(capsys, cli_train.main, base + ['--data-dir', str(tmp_path / 'flat' / '0.png')])
    assert 'is a file, not a folder' in line
    for bad, what in ((['--batch-size', 'abc'], "'batch_size' expects int"), (['--mixup', '-1'], "'mixup' must be"),
                      (['--corrupt', 'ignore'], "'corrupt' must be one of"), (['--hflip', '2'], 'probability'),
                      (['--eopchs', '3'], 'unrecognized arguments'), (['--set', 'lrr=1'], "'lrr'")):
        assert what in _user_error(capsys, cli_train.main, base + ['--data-dir', str(data)] + bad), bad
    line = _user_error(capsys, cli_train.main, base + ['--data-dir', str(data), '--initial-checkpoint',
                                                       str(tmp_path / 'none.pth')])
    assert 'none.pth' in line
    (tmp_path / 'notes.txt').write_text('not a checkpoint\n')
    line = _user_error(capsys, cli_train.main, base + ['--data-dir', str(data), '--initial-checkpoint',
                                                       str(tmp_path / 'notes.txt')])
    assert 'not a readable checkpoint' in line
    line = _user_error(capsys, cli_train.main, base + ['--data-dir', str(tmp_path / 'typo')])  # default dataset
    assert 'data folder' in line and 'typo' in line and '--dataset shapes' in line
    assert 'zoo_resattnet92_cifar' in _user_error(capsys, cli_train.main, base + [
        '--data-dir', str(data), '--model', 'zoo_resattnet92_cifar', '--pretrained'])  # a model without weights
    assert 'no_such_kwarg' in _user_error(capsys, cli_train.main, base + [
        '--data-dir', str(data), '--model-kwargs', 'no_such_kwarg=1'])
    assert 'gone.pth' in _user_error(capsys, cli_train.main, base + [
        '--data-dir', str(data), '--resume', str(out / 'elsewhere' / 'gone.pth')])
    # nothing was written: the existing run is untouched and no new run folder appeared
    assert sorted(p.name for p in out.iterdir()) == ['exp']
    assert [p.name for p in (out / 'exp').iterdir()] == ['last.pth']
    assert (out / 'exp' / 'last.pth').read_bytes() == b'an existing run'


def test_eval_user_errors_are_one_line(tmp_path, capsys):
    line = _user_error(capsys, cli_eval.main, ['--checkpoint', str(tmp_path / 'missing.pth')])
    assert 'missing.pth' in line and 'does not exist' in line
    (tmp_path / 'notes.txt').write_text('just text\n' * 20)
    line = _user_error(capsys, cli_eval.main, ['--checkpoint', str(tmp_path / 'notes.txt'), '--model', 'resnet10t'])
    assert 'not a readable checkpoint' in line
    import timm
    torch.save({'state_dict': timm.create_model('resnet10t', num_classes=3).state_dict()}, tmp_path / 'r.pth')
    line = _user_error(capsys, cli_eval.main, ['--checkpoint', str(tmp_path / 'r.pth'), '--model', 'resnet14t'])
    assert 'does not match resnet14t' in line
    line = _user_error(capsys, cli_eval.main, ['--model', 'resnet10tt', '--pretrained'])
    assert "unknown model 'resnet10tt'" in line
    line = _user_error(capsys, cli_eval.main, ['--checkpoint', str(tmp_path / 'r.pth'), '-b', '0'])
    assert "'batch_size' must be >= 1" in line
    line = _user_error(capsys, cli_eval.main, ['--model', 'resnet10t'])
    assert '--checkpoint and/or --pretrained' in line


@pytest.mark.parametrize('module,argv,expected', [
    ('push', ['zoo_resnet18_cbamm', '--checkpoint', 'x.pth'], "unknown model 'zoo_resnet18_cbamm'"),
    ('convert', ['--model', 'zoo_resnet18_cbamm', '--checkpoint', 'x.pth', '--out', 'o'],
     "unknown model 'zoo_resnet18_cbamm'"),
    ('demo', ['--config', 'zoo::cls/no_such_config.yaml'], 'no packaged config zoo::cls/no_such_config.yaml'),
])
def test_other_entry_points_report_user_errors_through_run(module, argv, expected, capsys):
    """zoo.cli.command: the entry point returns 2 (raised by zoo.cli.run, not by argparse) with one error line."""
    import importlib
    main = importlib.import_module(f'zoo.cli.{module}').main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and expected in err[0], err


def test_user_error_end_to_end_subprocess(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, str(REPO / 'tools' / 'eval.py'), '--checkpoint', str(tmp_path / 'x.pth')],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 2 and 'Traceback' not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith('error: checkpoint') and p.stdout == ''


# ---------------------------------------------------------------- an ImageFolder --data-dir, odd batches with mixup

@pytest.mark.parametrize('layout', ['splits', 'flat'])
def test_data_dir_image_folder_trains_without_dataset_flag(tmp_path, layout):
    data = _tree(tmp_path / 'data', splits=('train', 'val') if layout == 'splits' else ('',), n=3)
    out = tmp_path / 'out'
    rc = cli_train.main(TINY + ['--data-dir', str(data), '-b', '2', '--output', str(out), '--experiment', 'r'])
    assert rc == 0
    res = json.loads((out / 'r' / 'results.json').read_text())
    ck = torch.load(out / 'r' / 'last.pth', map_location='cpu', weights_only=True)
    assert res['status'] == 'ok' and res['class_names'] == ['a', 'b'] and ck['config']['dataset'] == 'folder'
    if layout == 'splits':
        assert res['final_eval']['n_images'] == 6 and ck['config']['val_split'] == 'val'
        r = cli_eval.main(['--checkpoint', str(out / 'r' / 'last.pth'), '-j', '0', '--results-file',
                           str(tmp_path / 'e.json'), '--torchcompile', 'eager'])
        assert r == 0 and json.loads((tmp_path / 'e.json').read_text())['n_images'] == 6
    else:
        assert res['final_eval'] == {} and ck['config']['train_split'] == ''
    # a plain state dict (no run config): the --data-dir image folder is still evaluated as one
    torch.save(ck['state_dict'], tmp_path / 'plain.pth')
    r = cli_eval.main(['--model', 'resnet10t', '--checkpoint', str(tmp_path / 'plain.pth'), '--data-dir', str(data),
                       '--img-size', '16', '-j', '0', '--results-file', str(tmp_path / 'p.json')])
    ev = json.loads((tmp_path / 'p.json').read_text())
    assert r == 0 and ev['dataset'] == 'folder' and ev['n_images'] == 6 and ev['num_classes'] == 2


def test_mixup_on_odd_batches():
    from zoo.train.build import build_mixup
    from zoo.train.config import TrainConfig
    from timm.data import Mixup
    cfg = TrainConfig.from_dict(dict(mixup=0.2, cutmix=1.0, mixup_prob=1.0, mixup_switch_prob=0.5, mixup_mode='batch',
                                     smoothing=0.1))
    mix = build_mixup(cfg, 5)
    ref = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=5)
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 5
    np.random.seed(0)
    xa, ya = mix(x.clone(), y)
    np.random.seed(0)
    xb, yb = ref(x.clone(), y)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # even batches: exactly timm's
    for mode in ('batch', 'pair', 'elem'):
        m = build_mixup(cfg.replace(mixup_mode=mode), 5)
        for n in (7, 1):
            xo, yo = m(x[:n].clone(), y[:n])
            assert xo.shape == (n, 3, 8, 8) and yo.shape == (n, 5)
            torch.testing.assert_close(yo.sum(1), torch.ones(n))
            assert torch.equal(xo[-1], x[n - 1])  # the odd sample is kept as it is, with its smoothed target
            assert yo[-1].argmax() == y[n - 1] and abs(float(yo[-1].max()) - (0.9 + 0.1 / 5)) < 1e-6


def test_odd_batches_with_mixup_train(tmp_path, capsys):
    from zoo.train import train
    data = _tree(tmp_path / 'data', n=7)
    out = tmp_path / 'out'
    # an odd batch size (timm's Mixup alone asserts an even batch)
    rc = cli_train.main(TINY + ['--data-dir', str(data), '-b', '7', '--mixup', '0.2', '--cutmix', '1.0',
                                '--output', str(out), '--experiment', 'odd'])
    assert rc == 0, capsys.readouterr().err[-2000:]
    ck = torch.load(out / 'odd' / 'last.pth', map_location='cpu', weights_only=True)
    assert ck['num_updates'] == 2  # 14 images in batches of 7
    # an even batch left odd by a skipped unreadable image (16 files in 4 batches of 4: none dropped)
    _images(data / 'train' / 'b2', 1, seed=3)
    (data / 'train' / 'b2' / '0.png').rename(data / 'train' / 'b' / 'extra.png')
    (data / 'train' / 'b2').rmdir()
    (data / 'train' / 'b' / 'bad.png').write_bytes(b'not an image')
    cfg = load_config(None, [('model', 'resnet10t'), ('data_dir', str(data)), ('img_size', 16), ('batch_size', 4),
                             ('mixup', 0.5), ('epochs', 1), ('warmup_epochs', 0), ('workers', 0),
                             ('log_interval', 0), ('tensorboard', False), ('output', str(out)),
                             ('experiment', 'corrupt'), ('seed', 1)])
    res = train(cfg)
    assert res['status'] == 'ok' and res['n_corrupt'] == 1 and res['history'][0]['train_loss'] > 0
    assert torch.load(out / 'corrupt' / 'last.pth', weights_only=True)['num_updates'] == 4


def test_pretrained_path_loads_like_pretrained(tmp_path):
    """timm's --pretrained-path: the file is the model's pretrained weights (head adapted to the class count)."""
    import timm
    from zoo.train.build import build_model
    src = timm.create_model('resnet10t')
    torch.save({'state_dict': src.state_dict()}, tmp_path / 'w.pth')
    model, kwargs, _ = build_model(_cfg(['-m', 'resnet10t', '--pretrained-path', str(tmp_path / 'w.pth')]), 2)
    assert kwargs == {} and model.fc.weight.shape == (2, 512)
    assert torch.equal(model.state_dict()['conv1.0.weight'], src.state_dict()['conv1.0.weight'])
