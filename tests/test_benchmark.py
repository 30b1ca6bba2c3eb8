"""tools/benchmark.py: correctness of what it counts and that every figure is produced (never its timings)."""
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from zoo import bench

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'tools'))
import benchmark  # noqa: E402


def test_gmacs_of_known_layers():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    # 8 output channels x 3 input channels x 3x3 taps x 10x10 positions
    assert bench.count_gmacs(conv, (3, 10, 10)) * 1e9 == pytest.approx(8 * 3 * 9 * 100)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    assert bench.count_gmacs(lin, (16, 1, 1), batch_size=5) * 1e9 == pytest.approx(16 * 4)


def test_params():
    assert bench.count_params(nn.Linear(16, 4)) == 16 * 4 + 4


def test_every_figure_is_produced():
    rec = bench.measure('resnet10t', img_size=32, batch_size=2, warmup=1, repeats=2)
    for key in ('params_m', 'gmacs', 'latency_ms', 'latency_spread_ms', 'infer_img_s', 'train_img_s', 'peak_mem_mb'):
        assert isinstance(rec[key], float) and rec[key] >= 0, key
    assert rec['params_m'] == pytest.approx(bench.count_params(__import__('timm').create_model('resnet10t')) / 1e6)


def test_time_fn_statistics():
    calls = []
    t = bench.time_fn(lambda: calls.append(1), torch.device('cpu'), warmup=2, repeats=5)
    assert len(calls) == 7 and t['n'] == 5 and t['min'] <= t['median']


def test_failing_model_is_reported_not_fatal(tmp_path):
    out = tmp_path / 'bench'
    rc = benchmark.main(['resnet10t', 'zoo_no_such_model', '--sizes', '32', '48', '--batch-size', '2',
                         '--repeats', '2', '--warmup', '1', '--no-train', '--plot', '--out-dir', str(out)])
    assert rc == 0
    data = json.loads((out / 'results.json').read_text())
    assert data['environment']['torch'] == torch.__version__
    recs = data['results']
    bad = [r for r in recs if r['model'] == 'zoo_no_such_model']
    good = [r for r in recs if r['model'] == 'resnet10t']
    assert len(bad) == 2 and all('error' in r for r in bad)
    assert len(good) == 2 and all(r['latency_ms_ratio'] == pytest.approx(1.0) for r in good)
    assert (out / 'results.csv').exists() and (out / 'scaling.png').stat().st_size > 0
    assert 'zoo_no_such_model' in (out / 'results.md').read_text()


def test_ratios_are_to_the_first_baseline():
    recs = [dict(model='a', img_size=32, batch_size=2, latency_ms=2.0), dict(model='b', img_size=32, batch_size=2, latency_ms=6.0)]
    bench.add_ratios(recs, 'a')
    assert recs[1]['latency_ms_ratio'] == pytest.approx(3.0)


def test_markdown_table():
    t = bench.markdown_table([dict(model='m', gmacs=1.23456, params_m=None)], ['model', 'gmacs', 'params_m'])
    assert t.splitlines()[2] == '| m | 1.23 |  |'
