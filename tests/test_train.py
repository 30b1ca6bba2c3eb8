"""zoo.train and tools/{train,eval}.py: config, outputs, exact resume, NaN stop, fine-tuning, corrupt data, DDP,
evaluation, det/seg dispatch and the benchmark hook. Tiny runs: timm resnet10t at 32 px on a few shapes images."""
import csv
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from zoo.data.datasets import CorruptImageError, DatasetError
from zoo.train import (ConfigError, NonFiniteLossError, Trainer, eval_config, load_config, load_initial_checkpoint,
                       run_train_steps, train, validate)
from zoo.train.config import add_config_args, config_from_args

REPO = Path(__file__).resolve().parent.parent


def _tiny(data_dir, out, **kw):
    o = dict(model='resnet10t', dataset='shapes', data_dir=str(data_dir), shapes_train=24, shapes_val=12,
             shapes_size=32, img_size=32, batch_size=8, workers=0, log_interval=0, progress='log',
             tensorboard=False, epochs=1, warmup_epochs=0, lr=1e-3, output=str(out), experiment='run')
    o.update(kw)
    return load_config(None, [(k, v) for k, v in o.items()])


@pytest.fixture(scope='module')
def shapes_dir(tmp_path_factory):
    from zoo.data.shapes import make_classification
    return make_classification(tmp_path_factory.mktemp('shapes') / 'cls', 24, 12, 32, seed=0).root


@pytest.fixture(scope='module')
def trained(shapes_dir, tmp_path_factory):
    """One finished 1-epoch run (with TensorBoard) shared by the output / eval tests."""
    out = tmp_path_factory.mktemp('trained')
    res = train(_tiny(shapes_dir, out, tensorboard=True, log_interval=1))
    return res


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


# ---------------------------------------------------------------- config

def test_config_yaml_flags_and_set(tmp_path):
    import argparse
    y = tmp_path / 'c.yaml'
    y.write_text('model: resnet10t\nepochs: 3\nscale: [0.5, 1.0]\nexperiment: from-yaml\n')
    p = argparse.ArgumentParser()
    add_config_args(p)
    args = p.parse_args(['--config', str(y), '--epochs', '5', '--set', 'lr=0.01', 'amp=true', '--no-tensorboard',
                         '--model-kwargs', 'drop_rate=0.1', '--experiment', '2024-01-01', '--scale', '0.3', '1',
                         '--set', 'epochs=7'])
    cfg = config_from_args(args)
    assert cfg.model.model == 'resnet10t' and cfg.sched.epochs == 7 and cfg.optim.lr == 0.01 and cfg.loop.amp is True
    assert cfg.output.tensorboard is False and cfg.model.model_kwargs == {'drop_rate': 0.1}
    assert cfg.output.experiment == '2024-01-01' and cfg.aug.scale == [0.3, 1.0]
    with pytest.raises(ConfigError, match="unknown config field 'eopchs'.*epochs"):
        load_config(None, ['eopchs=3'])
    with pytest.raises(ConfigError, match="'batch_size' expects int"):
        load_config(None, ['batch_size=abc'])
    with pytest.raises(ConfigError, match="'corrupt' must be one of"):
        load_config(None, ['corrupt=ignore'])
    (tmp_path / 'bad.yaml').write_text('lrr: 0.1\n')
    with pytest.raises(ConfigError, match='lrr'):
        load_config(str(tmp_path / 'bad.yaml'))
    for f in sorted((REPO / 'configs' / 'cls').glob('*.yaml')):
        load_config(str(f))  # the shipped configs are valid


def test_config_sections_reject_misspelt_names():
    from zoo.train.config import SETTINGS, ModelCfg, TrainConfig
    cfg = load_config(None, ['lr=0.01', 'batch_size=8'])
    assert cfg.optim.lr == 0.01 and cfg.loop.batch_size == 8 and cfg.to_dict()['lr'] == 0.01
    with pytest.raises(AttributeError):
        cfg.optim.lrr
    with pytest.raises(AttributeError):
        cfg.loop.batchsize = 4
    with pytest.raises(TypeError):
        ModelCfg(modle='resnet10t')
    with pytest.raises(ConfigError, match="unknown config field 'lrr'"):
        cfg.replace(lrr=1)
    assert list(TrainConfig.from_dict(cfg.to_dict()).to_dict()) == list(SETTINGS)  # config.yaml order


# ---------------------------------------------------------------- reduced precision follows the hardware

def _native(monkeypatch, bf16: bool, fp16: bool = False):
    """Pretend this CPU has (or lacks) native bf16 / fp16 (oneDNN's capability check)."""
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: bf16)
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_fp16_supported', lambda: fp16)


def test_native_dtype_check(monkeypatch):
    from zoo.train.utils import native_dtype_missing
    _native(monkeypatch, bf16=False, fp16=True)
    cap = torch.backends.cpu.get_cpu_capability()
    assert native_dtype_missing(torch.bfloat16, 'cpu') == f'no native bf16 on this CPU ({cap} only)'
    assert native_dtype_missing(torch.float16, 'cpu') is None
    assert native_dtype_missing(torch.float32, 'cpu') is None and native_dtype_missing(torch.bfloat16, 'cuda') is None
    _native(monkeypatch, bf16=True, fp16=False)
    assert native_dtype_missing(torch.bfloat16, 'cpu') is None
    assert native_dtype_missing(torch.float16, 'cpu') == f'no native fp16 on this CPU ({cap} only)'


@pytest.mark.parametrize('native', [True, False])
def test_amp_follows_native_support(native, monkeypatch, caplog):
    from zoo.train.utils import resolve_amp_dtype
    _native(monkeypatch, bf16=native)
    cpu = torch.device('cpu')
    with caplog.at_level('WARNING', logger='zoo'):
        assert resolve_amp_dtype(True, '', cpu) == (torch.bfloat16 if native else None)
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ([] if native else [f'no native bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()} '
                                         'only); running in float32 (--amp force keeps bfloat16)'])
    assert resolve_amp_dtype('force', '', cpu) == torch.bfloat16 and resolve_amp_dtype(False, '', cpu) is None


def test_amp_force_flag_and_yaml(tmp_path):
    (tmp_path / 'c.yaml').write_text('amp: force\n')
    assert load_config(str(tmp_path / 'c.yaml')).loop.amp == 'force'
    assert load_config(None, ['amp=true']).loop.amp is True and load_config(None, ['amp=force']).loop.amp == 'force'
    with pytest.raises(ConfigError, match="'amp' expects bool"):
        load_config(None, ['amp=sometimes'])
    from zoo.cli.train import build_parser
    parse = lambda *argv: config_from_args(build_parser().parse_args(list(argv)))  # noqa: E731
    assert parse('--amp').loop.amp is True and parse('--amp', 'force').loop.amp == 'force'
    assert parse('--amp', '--no-amp').loop.amp is False
    cfg = parse('--amp', str(tmp_path))  # timm's positional data folder may follow --amp
    assert cfg.loop.amp is True and cfg.data.data_dir == str(tmp_path)


@pytest.mark.parametrize('amp,native', [('--amp', False), ('force', False), ('--amp', True)])
def test_train_and_eval_tools_follow_native_support(amp, native, shapes_dir, tmp_path, monkeypatch, capfd):
    _native(monkeypatch, bf16=native)
    flags = ['--amp'] + (['force'] if amp == 'force' else [])
    rc = _tool('train').main(['--model', 'resnet10t', '--data-dir', str(shapes_dir), '--set', 'shapes_train=24',
                              'shapes_val=12', 'shapes_size=32', '--img-size', '32', '--epochs', '1', '--batch-size',
                              '8', '--workers', '0', '--output', str(tmp_path), '--experiment', 'amp', '-q',
                              '--no-tensorboard', '--log-interval', '0', '--steps-per-epoch', '1', *flags])
    err = capfd.readouterr().err
    reduced = native or amp == 'force'
    assert rc == 0 and err.count('no native bf16') == (0 if reduced else 1), err
    assert ('amp torch.bfloat16' if reduced else 'amp None') in err
    out = tmp_path / 'eval.json'
    rc = _tool('eval').main(['--checkpoint', str(tmp_path / 'amp' / 'last.pth'), '--workers', '0', '--output',
                             str(out), '--no-progress', *flags])
    err = capfd.readouterr().err
    assert rc == 0 and err.count('no native bf16') == (0 if reduced else 1), err
    assert json.loads(out.read_text())['amp'] == ('torch.bfloat16' if reduced else None)


# ---------------------------------------------------------------- a run and its outputs

def test_outputs_checkpoints_and_logs(trained):
    out = Path(trained['output_dir'])
    assert trained['status'] == 'ok' and trained['epochs_done'] == 1
    for name in ('last.pth', 'best.pth', 'summary.csv', 'results.json', 'config.yaml', 'log.txt'):
        assert (out / name).is_file(), name
    assert list((out / 'tb').glob('events.out.tfevents.*'))
    ck = _load(out / 'last.pth')  # loads with weights_only=True
    for k in ('state_dict', 'optimizer', 'scheduler', 'rng', 'epoch', 'num_updates', 'class_names', 'data_cfg'):
        assert k in ck
    assert ck['epoch'] == 0 and ck['num_updates'] == 3 and ck['arch'] == 'resnet10t'
    rows = list(csv.DictReader((out / 'summary.csv').open()))
    assert len(rows) == 1 and {'epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr'} <= set(rows[0])
    res = json.loads((out / 'results.json').read_text())
    assert res['status'] == 'ok' and 0 <= res['final_eval']['top1'] <= 100
    assert set(res['final_eval']['per_class_top1']) == {'circle', 'triangle', 'square', 'pentagon', 'star', 'cross'}
    assert 'Train: 0 [    1/3' in (out / 'log.txt').read_text()
    # the checkpoint also loads with timm's own loader
    import timm
    m = timm.create_model('resnet10t', num_classes=6, checkpoint_path=str(out / 'best.pth'))
    assert torch.equal(m.state_dict()['fc.weight'], ck['state_dict']['fc.weight'])
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')]  # atomic writes left no temp files


def test_resume_continues_exactly(shapes_dir, tmp_path):
    """2 epochs straight == 1 epoch, stop, resume, 1 epoch (mixup, drop-path, EMA, RandAugment, a loader worker)."""
    kw = dict(epochs=2, warmup_epochs=1, model_ema=True, model_ema_decay=0.9, mixup=0.4, cutmix=0.5,
              drop_path_rate=0.1, aa='rand-m9-n2', workers=1)
    full = train(_tiny(shapes_dir, tmp_path, experiment='full', **kw))
    part = train(_tiny(shapes_dir, tmp_path, experiment='part', stop_after_epochs=1, **kw))
    assert part['status'] == 'stopped' and part['epochs_done'] == 1
    assert _load(tmp_path / 'part' / 'last.pth')['epoch'] == 0
    resumed = train(_tiny(shapes_dir, tmp_path, resume=str(tmp_path / 'part' / 'last.pth'), experiment='', **kw))
    assert resumed['status'] == 'ok' and resumed['epochs_done'] == 2 and full['epochs_done'] == 2
    a, b = _load(tmp_path / 'full' / 'last.pth'), _load(tmp_path / 'part' / 'last.pth')
    assert a['epoch'] == b['epoch'] == 1 and a['num_updates'] == b['num_updates']
    for key in ('state_dict', 'state_dict_ema'):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f'{key}.{name} differs after resume'
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r['train_loss'] for r in full['history']] == [r['train_loss'] for r in resumed['history']]
    assert len(list(csv.DictReader((tmp_path / 'part' / 'summary.csv').open()))) == 2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(shapes_dir, tmp_path):
    t = Trainer(_tiny(shapes_dir, tmp_path, epochs=3)).setup()
    calls = {'n': 0}

    def poison(module, inputs, output):
        if module.training:
            calls['n'] += 1
            if calls['n'] == 5:  # epoch 2, step 2
                return output * float('nan')
        return output

    t.model.register_forward_hook(poison)
    res = t.fit()
    assert res['status'] == 'non_finite_loss'
    assert 'loss is nan at epoch 2, step 2' in res['message'] and 'last.pth (epoch 1)' in res['message']
    ck = _load(tmp_path / 'run' / 'last.pth')
    assert ck['epoch'] == 0 and all(torch.isfinite(v).all() for v in ck['state_dict'].values() if v.is_floating_point())
    assert json.loads((tmp_path / 'run' / 'results.json').read_text())['status'] == 'non_finite_loss'
    t2 = Trainer(_tiny(shapes_dir, tmp_path, experiment='raise', epochs=2)).setup()
    t2.model.register_forward_hook(lambda m, i, o: o * float('inf') if m.training else o)
    with pytest.raises(NonFiniteLossError):
        t2.fit(raise_on_nan=True)
    assert not (tmp_path / 'raise' / 'last.pth').exists()


# ---------------------------------------------------------------- fine-tuning, data errors

def test_initial_checkpoint_with_new_class_count(tmp_path):
    import timm
    src = timm.create_model('resnet10t', num_classes=10)
    torch.save({'state_dict': src.state_dict(), 'epoch': 3}, tmp_path / 'src.pth')
    dst = timm.create_model('resnet10t', num_classes=6)
    skipped = load_initial_checkpoint(dst, str(tmp_path / 'src.pth'))
    assert skipped == ['fc.weight', 'fc.bias'] and dst.fc.weight.shape[0] == 6
    assert torch.equal(dst.state_dict()['conv1.0.weight'], src.state_dict()['conv1.0.weight'])
    sd = src.state_dict()
    sd['layer1.0.conv1.weight'] = sd['layer1.0.conv1.weight'][:, :3]
    del sd['layer4.0.bn1.weight']
    torch.save(sd, tmp_path / 'bad.pth')
    with pytest.raises(RuntimeError, match=r"missing: \['layer4.0.bn1.weight'\].*wrong shape.*layer1.0.conv1.weight"):
        load_initial_checkpoint(timm.create_model('resnet10t', num_classes=6), str(tmp_path / 'bad.pth'))


def test_initial_checkpoint_runs_the_family_filter(tmp_path):
    """An official-layout file (here CBAM's: ``module.`` prefix, ``cbam.ChannelGate.mlp.*`` names, 1000 classes)
    loads with initial_checkpoint as it does with pretrained_path: through the family's checkpoint_filter_fn."""
    import timm
    from zoo.models.zoo_cbam import _OFFICIAL_RENAMES
    from zoo.models import checkpoint_filter
    src = timm.create_model('zoo_resnet18_cbam', num_classes=1000)
    official = {}
    for k, v in src.state_dict().items():
        for old, new in _OFFICIAL_RENAMES:
            k = k.replace(new, old)
        official['module.' + k] = v
    assert any('.cbam.ChannelGate.mlp.1.' in k for k in official)
    torch.save({'state_dict': official, 'epoch': 90}, tmp_path / 'official.pth.tar')
    dst = timm.create_model('zoo_resnet18_cbam', num_classes=6)
    assert checkpoint_filter(dst).__module__ == 'zoo.models.zoo_cbam'
    assert load_initial_checkpoint(dst, str(tmp_path / 'official.pth.tar')) == ['fc.weight', 'fc.bias']
    ref = src.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in dst.state_dict().items() if not k.startswith('fc.'))
    from zoo.errors import UserError
    (tmp_path / 'notes.txt').write_text('not a checkpoint')
    with pytest.raises(UserError, match='not a readable checkpoint'):
        load_initial_checkpoint(dst, str(tmp_path / 'notes.txt'))


def test_finetune_run_from_checkpoint(trained, tmp_path, shapes_dir):
    res = train(_tiny(shapes_dir, tmp_path, initial_checkpoint=trained['checkpoints']['last'], steps_per_epoch=1,
                      amp='force', channels_last=True, grad_accum_steps=2, clip_grad=1.0))
    assert res['status'] == 'ok' and res['history'][0]['train_loss'] > 0


def _folder(root, classes=('a', 'b'), n=4):
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(root / split / c / f'{i}.png'), rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    return root


def test_corrupt_images_are_counted_or_fatal(tmp_path):
    root = _folder(tmp_path / 'data')
    (root / 'train' / 'b' / 'bad.jpg').write_bytes(b'garbage')
    kw = dict(dataset='folder', batch_size=3, img_size=16)
    res = train(_tiny(root, tmp_path, experiment='skip', **kw))
    assert res['status'] == 'ok' and res['n_corrupt'] == 1 and res['corrupt_paths'][0].endswith('bad.jpg')
    with pytest.raises(CorruptImageError, match='bad.jpg'):
        train(_tiny(root, tmp_path, experiment='fatal', corrupt='error', **kw))
    (root / 'val' / 'c').mkdir()
    with pytest.raises(DatasetError, match=r"\['c'\].*not in the class list"):
        train(_tiny(root, tmp_path, experiment='extra', **kw))
    (root / 'val' / 'c').rmdir()
    (root / 'train' / 'e').mkdir()
    with pytest.raises(DatasetError, match='empty class folder'):
        train(_tiny(root, tmp_path, experiment='empty', **kw))
    assert not (tmp_path / 'empty' / 'last.pth').exists()


# ---------------------------------------------------------------- evaluation

def _tool(name):
    spec = importlib.util.spec_from_file_location(f'_zoo_tool_{name}', REPO / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_validate_checkpoint_and_overrides(trained, tmp_path):
    ck = trained['checkpoints']['best']
    r = validate(eval_config(checkpoint=ck, workers=0))  # model, data and classes come from the checkpoint
    assert r['model'] == 'resnet10t' and r['n_images'] == 12 and r['img_size'] == [32, 32]
    assert abs(r['top1'] - trained['final_eval']['top1']) < 1e-6 and r['images_per_s'] > 0
    assert sum(r['per_class_count'].values()) == 12 and 0 <= r['top5'] <= 100 and r['loss'] > 0
    r2 = validate(eval_config(model='resnet10t', checkpoint=ck, workers=0, img_size=40, crop_pct=1.0))
    assert r2['img_size'] == [40, 40] and r2['crop_pct'] == 1.0
    out = tmp_path / 'eval.json'
    rc = _tool('eval').main(['--checkpoint', ck, '--workers', '0', '--output', str(out), '--img-size', '36'])
    data = json.loads(out.read_text())
    assert rc == 0 and data['img_size'] == [36, 36] and {'top1', 'top5', 'loss', 'per_class_top1'} <= set(data)


def test_validate_exported_local_dir(trained, tmp_path):
    import timm
    from zoo.hub.export import export, hub_data_config
    ck = _load(trained['checkpoints']['best'])
    m = timm.create_model('resnet10t', num_classes=6)
    m.load_state_dict(ck['state_dict'])
    d = export(m.eval(), tmp_path / 'export', label_names=ck['class_names'], data_config=hub_data_config(ck['data_cfg']),
               readme=False)
    assert {p.name for p in d.iterdir()} == {'config.json', 'model.safetensors'}
    r = validate(eval_config(model=f'local-dir:{d}', pretrained=True, dataset='shapes',
                             data_dir=str(Path(trained['output_dir']).parent.parent / 'nowhere'), shapes_train=24,
                             shapes_val=12, shapes_size=32, workers=0))
    assert r['img_size'] == [32, 32] and r['num_classes'] == 6


# ---------------------------------------------------------------- tools, DDP, benchmark hook

def test_train_tool_dispatches_mm_configs(monkeypatch):
    calls = []
    from zoo.cli import mm as cli_mm
    runner = types.ModuleType('zoo.mm.runner')
    monkeypatch.setattr(cli_mm, 'main_train', lambda argv: calls.append(('train', list(argv))) or 0)
    monkeypatch.setattr(cli_mm, 'main_eval', lambda argv: calls.append(('eval', list(argv))) or 0)
    pkg = types.ModuleType('zoo.mm')
    pkg.runner = runner
    monkeypatch.setitem(sys.modules, 'zoo.mm', pkg)
    monkeypatch.setitem(sys.modules, 'zoo.mm.runner', runner)
    assert _tool('train').main(['configs/det/x.py', '--work-dir', 'w']) == 0
    assert _tool('eval').main(['configs/seg/y.py', 'ckpt.pth']) == 0
    assert calls == [('train', ['configs/det/x.py', '--work-dir', 'w']), ('eval', ['configs/seg/y.py', 'ckpt.pth'])]


def test_train_tool_cli(shapes_dir, tmp_path):
    rc = _tool('train').main(['--model', 'resnet10t', '--data-dir', str(shapes_dir), '--set', 'shapes_train=24',
                              'shapes_val=12', 'shapes_size=32', '--img-size', '32', '--epochs', '1', '--batch-size',
                              '8', '--workers', '0', '--output', str(tmp_path), '--experiment', 'cli',
                              '--no-tensorboard', '--log-interval', '0'])
    assert rc == 0 and (tmp_path / 'cli' / 'best.pth').is_file()


def test_run_folder_suffix_and_resume_auto(shapes_dir, tmp_path):
    first = train(_tiny(shapes_dir, tmp_path, experiment='exp'))
    second = train(_tiny(shapes_dir, tmp_path, experiment='exp'))  # never overwrites a finished run
    assert first['output_dir'] == str(tmp_path / 'exp') and second['output_dir'] == str(tmp_path / 'exp-1')
    more = train(_tiny(shapes_dir, tmp_path, experiment='exp', resume='auto', epochs=2))  # continues 'exp'
    assert more['output_dir'] == str(tmp_path / 'exp') and [r['epoch'] for r in more['history']] == [1, 2]
    fresh = train(_tiny(shapes_dir, tmp_path, experiment='new', resume='auto'))  # nothing to resume: starts
    assert fresh['epochs_done'] == 1


def test_ddp_two_cpu_processes(shapes_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(REPO / 'tools' / 'train.py'), '--model', 'resnet10t', '--data-dir', str(shapes_dir),
           '--set', 'shapes_train=24', 'shapes_val=12', 'shapes_size=32', 'img_size=32', 'epochs=2', 'batch_size=4',
           'workers=0', 'log_interval=1', 'tensorboard=false', 'progress=log', f'output={tmp_path}', 'experiment=ddp',
           'grad_accum_steps=2']
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / 'ddp' / 'results.json').read_text())
    assert res['world_size'] == 2 and res['epochs_done'] == 2 and res['status'] == 'ok'
    assert res['final_eval']['n_images'] == 12  # each validation image counted once over the two ranks
    assert 'x 2 rank(s)' in p.stderr and 'Train: 0 [    3/3' in p.stderr  # 24 images / (2 ranks x 4)
    assert _load(tmp_path / 'ddp' / 'last.pth')['num_updates'] == 4  # 2 epochs x ceil(3 steps / 2 accumulated)


@pytest.mark.slow
def test_torch_compile_run(shapes_dir, tmp_path):
    res = train(_tiny(shapes_dir, tmp_path, torchcompile='eager', steps_per_epoch=2))
    ck = _load(tmp_path / 'run' / 'last.pth')
    assert res['status'] == 'ok' and not any(k.startswith('_orig_mod') for k in ck['state_dict'])


def test_run_train_steps_is_the_real_loop():
    import timm
    torch.manual_seed(0)
    m = timm.create_model('resnet10t', num_classes=6)
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 6, (4,))) for _ in range(2)]
    w0 = m.fc.weight.detach().clone()
    stats = run_train_steps(m, batches, dict(lr=1e-3, opt='sgd'), num_steps=3, warmup_steps=1)
    assert stats['steps'] == 3 and stats['images'] == 12 and stats['images_per_s'] > 0
    assert stats['updates'] == 4  # optimizer updates so far, the untimed warm-up step included
    assert not torch.equal(w0, m.fc.weight)


def test_run_train_steps_builds_like_the_trainer(monkeypatch):
    """run_train_steps gets its optimiser / schedule / EMA from the Trainer's builder (EMA warm-up included)."""
    import timm
    from zoo.train import build
    made = {}
    real = build.build_training

    def spy(*a, **k):
        made['parts'] = real(*a, **k)
        return made['parts']
    monkeypatch.setattr(build, 'build_training', spy)
    monkeypatch.setattr('zoo.train.engine.build_training', spy)
    m = timm.create_model('resnet10t', num_classes=3)
    batches = [(torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2,)))]
    run_train_steps(m, batches, dict(model_ema=True, model_ema_warmup=True, sched='cosine', warmup_epochs=2),
                    num_steps=2)
    parts = made['parts']
    assert parts.model_ema is not None and parts.model_ema.use_warmup and parts.num_epochs == 1
    assert parts.scheduler is not None and parts.scheduler.warmup_t == 0  # no LR warm-up in a step benchmark


def test_grad_accumulation_matches_a_big_batch():
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    cfg = dict(opt='momentum', lr=0.1, momentum=0.0, weight_decay=0.0, sched='none', smoothing=0.0)
    import copy
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    run_train_steps(a, [(x, y)], cfg, num_steps=1, num_classes=3)
    run_train_steps(b, [(x[:4], y[:4]), (x[4:], y[4:])], dict(cfg, grad_accum_steps=2), num_steps=2, num_classes=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


@pytest.mark.slow
def test_demo_smoke(tmp_path):
    """tools/demo.py end to end on a tiny budget: train, evaluate, export to the Hub layout, reload via local-dir:."""
    cmd = [sys.executable, str(REPO / 'tools' / 'demo.py'), '--epochs', '1', '--min-top1', '0', '--threads', '1',
           '--output', str(tmp_path / 'demo'), '--data-dir', str(tmp_path / 'shapes'),
           '--set', 'shapes_train=48', 'shapes_val=24', 'shapes_size=32', 'img_size=32', 'batch_size=16']
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = json.loads((tmp_path / 'demo' / 'results.json').read_text())
    assert summary['reload_max_abs_diff'] == 0.0 and summary['eval']['n_images'] == 24
    assert summary['reloaded_eval_top1'] == summary['eval']['top1']
    assert {p.name for p in (tmp_path / 'demo' / 'export').iterdir()} == {'config.json', 'model.safetensors'}
    assert '| model' in p.stdout and 'zoo_resnet18_cbam' in p.stdout
