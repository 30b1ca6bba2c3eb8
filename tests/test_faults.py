"""Faults lose nothing and say what happened.

* SIGTERM / SIGINT sent to a training subprocess mid-epoch: a checkpoint at that step, one line naming it, exit
  128 + the signal; ``--resume`` then ends bit-identical (weights, EMA, optimiser, losses) to an uninterrupted run.
* A full device (a real small tmpfs) at every kind of write -- checkpoint, log / metrics, export, download, converted
  weights: one ``error:`` line naming the file and the free space, exit 2, no traceback, earlier files intact.
  Skipped, with the reason, where a tmpfs cannot be mounted (not root, no permission).
"""
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import run
from zoo.errors import DiskFullError

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))

# The child (rank PAUSE_RANK under torchrun) pauses in its N-th training forward until the trainer's handler has
# seen a signal (so the parent's signal always lands mid-step), then lets the run go on; `zoo-train` does the rest.
CHILD = '''
import os, signal, sys, time
from torch.nn.modules.module import register_module_forward_hook
pause_at, argv, seen = int(sys.argv[1]), sys.argv[2:], [0]

def hook(module, args, out):
    if module.training and type(module).__name__ == 'ResNet' and os.environ.get('RANK', '0') == '%s':
        seen[0] += 1
        if seen[0] == pause_at:
            stop = signal.getsignal(signal.SIGTERM).__self__  # the trainer's StopSignals
            print('PAUSED', os.getpid(), flush=True)
            for _ in range(6000):
                if stop.signum:
                    break
                time.sleep(0.01)

register_module_forward_hook(hook)
from zoo.cli.train import main
sys.exit(main(argv))
'''


@pytest.fixture(scope='module')
def shapes48(tmp_path_factory):
    from zoo.data.shapes import make_classification
    return make_classification(tmp_path_factory.mktemp('shapes') / 'cls', 48, 12, 32, seed=0).root


def _argv(data, out, **kw):
    """zoo-train arguments of a tiny run: timm's test_resnet at 32 px, 48 images in batches of 4 (12 steps)."""
    o = dict(shapes_train=48, shapes_val=12, shapes_size=32, img_size=32, batch_size=4, workers=0, log_interval=1,
             tensorboard='false', progress='log', epochs=1, warmup_epochs=0, lr=1e-3, output=str(out),
             experiment='run')
    o.update(kw)
    return ['--model', 'test_resnet', '--data-dir', str(data), '--set', *[f'{k}={v}' for k, v in o.items()]]


def _train(argv):
    from zoo.cli.train import main
    return main(argv)


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _error_lines(err):
    assert 'Traceback' not in err and 'Logging error' not in err, err[-3000:]
    return [line for line in err.splitlines() if line.startswith('error:')]


# ------------------------------------------------------------------------------------------------ signals

def _child(tmp_path, pause_rank=0):
    script = tmp_path / 'child.py'
    script.write_text(CHILD % pause_rank)
    return str(script)


def _interrupt(tmp_path, argv, pause_at, sig, group=False, ddp=False):
    """Run zoo-train in a subprocess, send ``sig`` during training forward ``pause_at`` (to the whole process group,
    loader workers included, as a terminal's Ctrl-C, when ``group``; with ``ddp``, under torchrun with 2 ranks, to
    rank 1 only); returns (exit status, stderr)."""
    cmd = [_child(tmp_path, pause_rank=int(ddp)), str(pause_at), *argv]
    if ddp:
        cmd = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', *cmd]
    err_path = tmp_path / 'child.stderr'
    with err_path.open('w') as err:
        p = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=err, text=True, env=ENV,
                             start_new_session=True)
        try:
            line = p.stdout.readline().split()
            assert line[:1] == ['PAUSED'], err_path.read_text()[-3000:]
            if group:
                os.killpg(p.pid, sig)
            else:
                os.kill(int(line[1]), sig)
            rc = p.wait(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
    return rc, err_path.read_text()


def _assert_same_run(a_path, b_path):
    a, b = _load(a_path), _load(b_path)
    assert a['epoch'] == b['epoch'] and a['num_updates'] == b['num_updates'] and 'interrupted' not in b
    for key in ('state_dict', 'state_dict_ema'):
        assert a[key].keys() == b[key].keys()
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f'{key}.{name} differs after the interrupted run resumed'
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r['train_loss'] for r in a['history']] == [r['train_loss'] for r in b['history']]


def _check_interrupted(tmp_path, argv, pause_at, sig, where, expect, group=False):
    """Interrupt, check the line, the status and the checkpoint (``expect``: epoch, num_updates, step), resume in
    this process; returns the resumed run's last.pth."""
    rc, err = _interrupt(tmp_path, argv, pause_at, sig, group)
    name = signal.Signals(sig).name
    last = tmp_path / 'int' / 'last.pth'
    assert rc == 128 + sig, err[-3000:]
    lines = [line for line in err.splitlines() if f'{name}: stopped' in line]
    assert len(lines) == 1 and f'{name}: stopped {where}; checkpoint {last}' in lines[0], err[-3000:]
    assert not _error_lines(err)
    res = json.loads((tmp_path / 'int' / 'results.json').read_text())
    assert res['status'] == 'interrupted' and res['signal'] == sig
    ck = _load(last)
    assert (ck['epoch'], ck['num_updates'], ck['interrupted']['step']) == expect
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert _train(argv + ['--resume', str(last)]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers  # restored after fit()
    return last


def test_sigterm_mid_epoch_checkpoints_the_step_and_resumes_exactly(shapes48, tmp_path):
    """EMA, mixup / CutMix, drop-path, RandAugment, a loader worker; stopped in the first epoch, at step 5 of 12."""
    kw = dict(epochs=2, warmup_epochs=1, model_ema='true', model_ema_decay=0.9, mixup=0.4, cutmix=0.5,
              drop_path_rate=0.1, aa='rand-m9-n2', workers=1)
    assert _train(_argv(shapes48, tmp_path, experiment='full', **kw)) == 0
    argv = _argv(shapes48, tmp_path, experiment='int', **kw)
    last = _check_interrupted(tmp_path, argv, 5, signal.SIGTERM, 'at epoch 1, step 5/12', expect=(-1, 5, 5))
    _assert_same_run(tmp_path / 'full' / 'last.pth', last)


def test_sigint_to_the_process_group_waits_for_the_accumulation_group(shapes48, tmp_path):
    """Ctrl-C as a terminal sends it (loader worker included), in epoch 2 during step 7 of 12 with 2 accumulated
    steps per update and a per-update schedule: the checkpoint is at step 8, after the update."""
    kw = dict(epochs=2, grad_accum_steps=2, sched_on_updates='true', warmup_epochs=1, model_ema='true',
              model_ema_decay=0.9, workers=1, drop_path_rate=0.1)
    assert _train(_argv(shapes48, tmp_path, experiment='full', **kw)) == 0
    argv = _argv(shapes48, tmp_path, experiment='int', **kw)
    last = _check_interrupted(tmp_path, argv, 12 + 7, signal.SIGINT, 'at epoch 2, step 8/12', expect=(0, 10, 8),
                              group=True)
    _assert_same_run(tmp_path / 'full' / 'last.pth', last)
    res = json.loads((tmp_path / 'int' / 'results.json').read_text())
    assert [r['epoch'] for r in res['history']] == [1, 2]


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_both_at_the_same_step(shapes48, tmp_path):
    """torchrun, 2 CPU ranks (6 steps per epoch): rank 1 alone gets SIGTERM during step 3; both stop after it, rank 0
    writes the checkpoint, and a resumed DDP run ends bit-identical to an uninterrupted one."""
    kw = dict(epochs=2, warmup_epochs=1, model_ema='true', model_ema_decay=0.9, mixup=0.4, cutmix=0.5,
              drop_path_rate=0.1)
    last = tmp_path / 'int' / 'last.pth'

    def torchrun(experiment, *extra):
        cmd = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', _child(tmp_path), '0']
        p = subprocess.run([sys.executable, *cmd, *_argv(shapes48, tmp_path, experiment=experiment, **kw), *extra],
                           env=ENV, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]

    torchrun('full')
    rc, err = _interrupt(tmp_path, _argv(shapes48, tmp_path, experiment='int', **kw), 3, signal.SIGTERM, ddp=True)
    assert rc != 0 and err.count('SIGTERM: stopped at epoch 1, step 3/6') == 1, err[-3000:]
    ck = _load(last)
    assert ck['interrupted']['step'] == 3 and len(ck['interrupted']['n_seen']) == 2
    torchrun('int', '--resume', str(last))
    _assert_same_run(tmp_path / 'full' / 'last.pth', tmp_path / 'int' / 'last.pth')


# ------------------------------------------------------------------------------------------------ full disk

@pytest.fixture
def small_fs(tmp_path):
    """``small_fs(kib)``: a fresh tmpfs of that size (unmounted after the test); skips where mounting fails."""
    mounted = []

    def mount(kib):
        folder = tmp_path / f'fs{len(mounted)}'
        folder.mkdir()
        try:
            p = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={kib}k', 'tmpfs', str(folder)],
                               capture_output=True, text=True, timeout=30)
            why = (p.stderr or p.stdout).strip() or f'exit status {p.returncode}'
        except (OSError, subprocess.SubprocessError) as e:
            p, why = None, str(e)
        if p is None or p.returncode:
            reason = f'cannot mount a small tmpfs here to fill it ({why})'
            print(reason)
            pytest.skip(reason)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(['umount', '-l', str(folder)], capture_output=True, timeout=30)


def _fill(folder, leave=0):
    """Fill ``folder``'s device until ``leave`` bytes are free."""
    fd = os.open(folder / 'filler', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while shutil.disk_usage(folder).free > leave:
            os.write(fd, b'\0' * min(1 << 20, shutil.disk_usage(folder).free - leave))
    except OSError:
        pass
    finally:
        os.close(fd)


def _no_space_line(err, path):
    lines = _error_lines(err)
    assert len(lines) == 1 and lines[0].startswith(f'error: no space left on the device to write {path} ('), err
    assert ' free there)' in lines[0]


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).rglob('*') if p.name.startswith('.') or p.suffix in ('.tmp', '.partial'))


def test_full_disk_at_a_checkpoint_write(shapes48, small_fs):
    """Epoch 1 is written; the disk then fills and epoch 2's last.pth fails: one line, exit 2, epoch 1 intact."""
    fs = small_fs(24 * 1024)
    assert _train(_argv(shapes48, fs)) == 0
    run_dir = fs / 'run'
    kept = {p.name: _sha(p) for p in run_dir.iterdir()}
    _fill(fs, leave=(run_dir / 'last.pth').stat().st_size // 2)
    argv = _argv(shapes48, fs, epochs=2) + ['--resume', str(run_dir / 'last.pth')]
    p = subprocess.run([sys.executable, '-m', 'zoo.cli.train', *argv], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    _no_space_line(p.stderr, run_dir / 'last.pth')
    assert {n: _sha(run_dir / n) for n in ('last.pth', 'best.pth', 'summary.csv', 'results.json')} == {
        n: kept[n] for n in ('last.pth', 'best.pth', 'summary.csv', 'results.json')}
    assert _load(run_dir / 'last.pth')['epoch'] == 0 and not _leftovers(run_dir)


def test_full_disk_at_log_and_metrics_files(small_fs, capsys, monkeypatch):
    from zoo.train.outputs import RunWriters, write_json
    from zoo.train.utils import setup_logging
    fs = small_fs(256)
    write_json(fs / 'results.json', {'status': 'ok'})
    monkeypatch.setattr(logging.getLogger('zoo'), 'handlers', [])  # not the console of an earlier test's capture
    with capsys.disabled():
        setup_logging(0, fs / 'log.txt')
    log = logging.getLogger('zoo.train')
    try:
        log.info('the first line')
        first = (fs / 'log.txt').read_text()
        kept = {'results.json': _sha(fs / 'results.json')}
        _fill(fs)
        writes = {'results.json': lambda: write_json(fs / 'results.json', {'status': 'x' * 100_000}),
                  'summary.csv': lambda: RunWriters(fs, False, None).summary([{'epoch': 1, 'note': 'x' * 100_000}]),
                  'log.txt': lambda: log.info('x' * 100_000)}
        for name, write in writes.items():
            capsys.readouterr()
            assert run(lambda argv: write(), []) == 2
            _no_space_line(capsys.readouterr().err, fs / name)
        log.info('after the full disk')  # the log file is closed; the run's console still logs
    finally:
        with capsys.disabled():
            setup_logging(0, None)
    assert {n: _sha(fs / n) for n in kept} == kept and not (fs / 'summary.csv').exists() and not _leftovers(fs)
    assert (fs / 'log.txt').read_text().startswith(first) and first.rstrip().endswith('the first line')


def test_full_disk_at_an_export(small_fs, capsys):
    from zoo.cli.export import main
    fs = small_fs(512)
    earlier = fs / 'model.pt'
    earlier.write_bytes(b'an earlier artefact')
    rc = main(['test_resnet', '--format', 'torchscript', '--input-size', '3', '32', '32', '--out', str(earlier)])
    assert rc == 2
    _no_space_line(capsys.readouterr().err, earlier)
    assert earlier.read_bytes() == b'an earlier artefact' and not _leftovers(fs)


def test_full_disk_at_a_download(small_fs, tmp_path, capsys):
    from zoo.hub.download import download
    src = tmp_path / 'weights.pth'
    torch.save({'w': torch.zeros(256, 1024)}, src)  # 1 MiB
    fs = small_fs(512)
    earlier = fs / 'sha256_records.json'
    earlier.write_text('{}\n')
    rc = run(lambda argv: download(src.as_uri(), cache=fs, progress=False), [])
    assert rc == 2
    _no_space_line(capsys.readouterr().err, fs / 'weights.pth')
    assert earlier.read_text() == '{}\n' and not (fs / 'weights.pth').exists() and not _leftovers(fs)


def test_full_disk_at_converted_weights(small_fs, tmp_path, capsys):
    """A second conversion into the same folder finds no room for its weights: the first one stays whole."""
    import timm
    from zoo.cli.convert import main
    ckpt = tmp_path / 'ck.pth'
    torch.save({'state_dict': timm.create_model('test_resnet', num_classes=6).state_dict()}, ckpt)
    fs = small_fs(2048)  # one copy of the 1.5 MB weights fits, not two
    out = fs / 'converted'
    argv = ['--model', 'test_resnet', '--checkpoint', str(ckpt), '--out', str(out)]
    assert main(argv) == 0
    kept = {p.name: _sha(p) for p in out.iterdir()}
    assert 'model.safetensors' in kept
    capsys.readouterr()
    assert main(argv + ['--num-classes', '3']) == 2
    _no_space_line(capsys.readouterr().err, out)
    assert {p.name: _sha(p) for p in out.iterdir()} == kept and not _leftovers(fs)


def test_disk_full_error_is_one_user_error(tmp_path, capsys):
    e = DiskFullError('/x/last.pth', 3 * 1024 * 1024)
    assert isinstance(e, OSError) and e.errno == errno.ENOSPC and e.filename == '/x/last.pth'
    assert str(e) == ('no space left on the device to write /x/last.pth (3.0 MiB free there); free some space and '
                      'run again')

    def raw(argv):  # a writer outside zoo.checkpoint's helpers
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / 'x.bin'))
    assert run(raw, []) == 2
    _no_space_line(capsys.readouterr().err, tmp_path / 'x.bin')
