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


def test_time_fn_statistics(monkeypatch):
    # a clock whose timed rounds last 5, 1, 3, 2, 4 s: median 3, min 1, spread = IQR / 2 of [1..5] = (4.5 - 1.5) / 2
    ticks = iter([0, 5, 10, 11, 20, 23, 30, 32, 40, 44])
    import zoo.bench.timing as timing
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: next(ticks))
    calls = []
    t = bench.time_fn(lambda: calls.append(1), torch.device('cpu'), warmup=2, repeats=5)
    assert len(calls) == 7 and t == {'median': 3, 'min': 1, 'spread': 1.5, 'n': 5}


def test_alternating_rounds_order_and_speedup(monkeypatch):
    # each call takes 1 s (fast) or 3 s (slow) on a fixed clock, except the slow side's last round (6 s)
    import zoo.bench.timing as timing
    clock, calls = [0.0], []
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: clock[0])

    def side(name, seconds):
        def f():
            calls.append(name)
            clock[0] += seconds.pop(0) if len(calls) > 2 else 0.0  # the untimed first call of each costs nothing
        return f
    ab = bench.speedup_alternating(side('fast', [1.0, 1.0, 1.0]), side('slow', [3.0, 3.0, 6.0]), rounds=3)
    # one untimed call each, then rounds in alternating order: fast-slow, slow-fast, fast-slow
    assert calls == ['fast', 'slow', 'fast', 'slow', 'slow', 'fast', 'fast', 'slow']
    assert ab['speedup'] == 3.0 and ab['speedup_min'] == 3.0 and ab['speedup_max'] == 6.0
    assert ab['fast_s'] == 1.0 and ab['slow_s'] == 3.0 and ab['rounds'] == 3


@pytest.mark.parametrize('native', [True, False])
def test_autocast_vs_fp32_fields(native, tmp_path, capsys, monkeypatch):
    import zoo.train.utils
    why = 'no native bf16 on this CPU (AVX2 only)'
    monkeypatch.setattr(zoo.train.utils, 'native_dtype_missing', lambda dtype, device: None if native else why)
    peaks = []  # the matmul peaks timed (each in its own process)
    monkeypatch.setattr(bench, 'matmul_peak_in_subprocess',
                        lambda device, dtype: peaks.append(dtype) or dict(flops_s=1e9, tflops=1e-3))
    rc = benchmark.main(['resnet10t', '--sizes', '32', '--batch-size', '2', '--warmup', '1', '--repeats', '2',
                         '--dtype', 'bf16', '--vs-fp32', '--rounds', '2', '--no-train', '--out-dir', str(tmp_path)])
    run = json.loads((tmp_path / 'results.json').read_text())
    rec = run['results'][0]
    assert rc == 0 and rec['finite_bf16'] is True
    # bf16 logits differ from fp32 (an 8-bit mantissa), but not by more than a few percent of the largest logit
    assert 0 < rec['rel_diff_vs_fp32'] < 0.1
    table = (tmp_path / 'results.md').read_text()
    assert 'speedup_vs_fp32' in table
    if native:
        assert rec['speedup_vs_fp32_rounds'] == 2 and peaks == ['fp32', 'bf16'] * 2
        assert rec['speedup_vs_fp32_min'] <= rec['speedup_vs_fp32'] <= rec['speedup_vs_fp32_max']
        assert isinstance(rec['frac_peak_bf16'], float)
    else:  # neither the bf16 matmul peak nor the speed-up is timed: the reason stands in for the ratios
        assert peaks == ['fp32', 'fp32'] and run['environment']['matmul_peak_bf16'] == f'not timed: {why}'
        assert rec['speedup_vs_fp32'] == rec['frac_peak_bf16'] == why and 'speedup_vs_fp32_min' not in rec
        assert why in table and capsys.readouterr().err.count(why) == 1
    capsys.readouterr()
    assert benchmark.main(['resnet10t', '--vs-fp32', '--out-dir', str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith('error: --vs-fp32 compares an autocast dtype with fp32')


@pytest.mark.slow  # end-to-end runs of several models in fresh processes
def test_failing_model_is_reported_not_fatal(tmp_path):
    out = tmp_path / 'bench'
    rc = benchmark.main(['resnet10t', 'zoo_no_such_model', '--sizes', '32', '48', '--batch-size', '2',
                         '--repeats', '2', '--warmup', '1', '--no-train', '--plot', '--out-dir', str(out),
                         '--csv', str(out / 'gpu.csv')])
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
    # the matmul peak of the same run, and each model's fraction of it (2 x GMACs x img/s / peak)
    peak = data['environment']['matmul_peak_fp32_tflops'] * 1e12
    assert peak > 0 and len(data['environment']['matmul_peak_fp32_runs_tflops']) == 2
    for r in good:
        assert r['frac_peak_fp32'] == pytest.approx(2 * r['gmacs'] * 1e9 * r['infer_img_s'] / peak)
    # the GPU table: fixed columns, the machine in every row
    import csv
    rows = list(csv.DictReader(open(out / 'gpu.csv')))
    assert list(rows[0]) == benchmark.GPU_COLUMNS and len(rows) == 4
    assert {r['torch'] for r in rows} == {torch.__version__} and all(r['matmul_peak_fp32_tflops'] for r in rows)


def test_ratios_are_to_the_first_baseline():
    recs = [dict(model='a', img_size=32, batch_size=2, latency_ms=2.0), dict(model='b', img_size=32, batch_size=2, latency_ms=6.0)]
    bench.add_ratios(recs, 'a')
    assert recs[1]['latency_ms_ratio'] == pytest.approx(3.0)


def test_markdown_table():
    t = bench.markdown_table([dict(model='m', gmacs=1.23456, params_m=None)], ['model', 'gmacs', 'params_m'])
    assert t.splitlines()[2] == '| m | 1.23 |  |'


def test_matmul_peak_counts_2n3_flops():
    rec = bench.matmul_peak(n=128, repeats=2)
    assert rec['n'] == 128 and rec['flops_s'] > 0 and rec['tflops'] == pytest.approx(rec['flops_s'] / 1e12)
    recs = [dict(model='a', gmacs=2.0, infer_img_s=10.0), dict(model='b', error='x')]
    bench.add_peak_fraction(recs, {'fp32': 80e9, 'bf16': 160e9})
    assert recs[0]['frac_peak_fp32'] == pytest.approx(0.5) and recs[0]['frac_peak_bf16'] == pytest.approx(0.25)
    assert 'frac_peak_fp32' not in recs[1]


def test_profile_lists_the_ops():
    text = bench.profile('resnet10t', img_size=32, batch_size=1, warmup=1, repeats=1, row_limit=5)
    assert 'Self CPU' in text and 'aten::' in text and 'resnet10t' in text.splitlines()[0]
    assert 'conv' in text  # a conv net's convolutions are among its top ops (aten::*conv*, e.g. _slow_conv2d_forward)


def test_throughput_group_reports_ratio_and_errors():
    recs = bench.measure_throughput_group(['resnet10t', 'zoo_no_such_model'], baseline='resnet10t',
                                          img_sizes={'resnet10t': 32}, batch_size=2, warmup=1, repeats=2)
    assert [r['model'] for r in recs] == ['resnet10t', 'resnet10t', 'zoo_no_such_model']
    base, same, bad = recs
    assert base['role'] == 'baseline' and base['img_size'] == 224 and same['img_size'] == 32
    assert same['infer_img_s_ratio'] == pytest.approx(same['infer_img_s'] / base['infer_img_s'])
    assert 'error' in bad and 'infer_img_s' not in bad


def test_model_table_export_column_and_params_form(tmp_path):
    from zoo import model_table
    assert model_table.export_cell(None, True) == 'TorchScript + compile'
    cell = model_table.export_cell(dict(torchscript=True, fx=False, compile=None, onnx=True), False)
    assert cell == 'TorchScript ✓ / FX ✗ / compile ? / ONNX ✓'
    path = tmp_path / 'export_status.json'
    path.write_text('{"zoo_overlock_xt": {"torchscript": false, "fx": true, "compile": true, "onnx": null, "notes": "n"}}')
    status = model_table.load_export_status(path)
    rows = model_table.collect('zoo_overlock_xt', throughput=False, export_status=status)
    assert len(rows) == 1 and rows[0]['export'] == 'TorchScript ✗ / FX ✓ / compile ✓ / ONNX ?'
    # OverLoCK has reparameterize(): counted in its training form, with the deployed count noted
    assert 'after reparameterize()' in rows[0]['params_note']
    deployed = float(rows[0]['params_note'].split()[0])
    assert deployed < rows[0]['params_m']
    table = model_table.render(rows)
    assert 'after reparameterize()' in table.splitlines()[2] and table.count('\n') == 2


def test_download_progress_switch(monkeypatch):
    """Downloads show progress bars unless --quiet: timm's (off in timm by default) and huggingface_hub's."""
    import timm.models._builder as builder
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    from zoo.cli import set_download_progress
    monkeypatch.delenv('HF_HUB_DISABLE_PROGRESS_BARS', raising=False)
    try:
        set_download_progress(True)
        assert builder._DOWNLOAD_PROGRESS is True and not are_progress_bars_disabled()
        set_download_progress(False)
        assert builder._DOWNLOAD_PROGRESS is False and are_progress_bars_disabled()
    finally:
        enable_progress_bars()
        builder._DOWNLOAD_PROGRESS = False
    root = Path(__file__).resolve().parent.parent
    for f in ('tools/benchmark.py', 'tools/demo.py', 'zoo/cli/benchmark.py', 'zoo/cli/demo.py'):
        assert 'HF_HUB_DISABLE_PROGRESS_BARS' not in (root / f).read_text(), f
    assert benchmark.main.__module__ == 'zoo.cli.benchmark'


def test_pair_mode_runs_both_sides(tmp_path):
    """--pair: the 'official' factory comes from a file of a checkout (here a stand-in written by the test, with a
    relative import of its own package); both models run forward and train steps in the same rounds."""
    root = tmp_path / 'checkout'
    (root / 'models').mkdir(parents=True)
    (root / 'README.md').write_text('stand-in official repo\n')
    (root / 'models' / '_common.py').write_text('import torch.nn as nn\nWIDTH = 4\n')
    (root / 'models' / 'net.py').write_text(
        'import torch.nn as nn\nfrom ._common import WIDTH\n\n'
        'def tiny_net(num_classes=1000, width=WIDTH):\n'
        '    return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))\n')
    out = tmp_path / 'bench'
    spec = f"resnet10t(num_classes=7)={root / 'models' / 'net.py'}:tiny_net(7, width=5)"
    rc = benchmark.main(['--pair', spec, '--train', '--sizes', '32', '--batch-size', '2', '--rounds', '3',
                         '--steps', '1', '--out-dir', str(out)])
    assert rc == 0
    recs = json.loads((out / 'pair.json').read_text())['results']
    assert [r['mode'] for r in recs] == ['forward', 'train'] and not any('error' in r for r in recs)
    fwd, train = recs
    assert fwd['official'] == 'net.py:tiny_net(7, width=5)' and fwd['zoo'] == 'resnet10t(num_classes=7)'
    assert fwd['official_params_m'] * 1e6 == 3 * 5 * 9 + 5 + 5 * 7 + 7
    assert fwd['zoo_out_shape'] == fwd['official_out_shape'] == [2, 7]
    # each side: 1 shape check, 1 warm-up and 3 rounds x 1 step per mode
    assert fwd['zoo_calls'] == fwd['official_calls'] == 2 * (1 + 3) + 1
    for r in recs:
        assert r['rounds'] == 3 and r['img_size'] == 32 and r['batch_size'] == 2 and r['dtype'] == 'fp32'
        assert r['zoo_ms'] > 0 and r['official_ms'] > 0
        assert r['speed'] == pytest.approx(r['official_ms'] / r['zoo_ms'])
        assert r['speed_min'] <= r['speed_max']
    assert 'tiny_net' in (out / 'pair.md').read_text()


@pytest.mark.parametrize('native', [True, False])
def test_pair_and_profile_follow_the_native_check(native, tmp_path, capsys, monkeypatch):
    """--pair and --profile with --dtype bf16 time where the device has bf16 natively; elsewhere nothing is timed
    and the reason stands in for the pair's speed and for the profile."""
    import zoo.bench.pair
    import zoo.train.utils
    why = 'no native bf16 on this CPU (AVX2 only)'
    monkeypatch.setattr(zoo.train.utils, 'native_dtype_missing', lambda dtype, device: None if native else why)
    runs = []  # the pair measurements started (each in its own process)
    start = zoo.bench.pair.run_case_subprocess
    monkeypatch.setattr(zoo.bench.pair, 'run_case_subprocess', lambda *a, **kw: runs.append(a) or start(*a, **kw))
    root = tmp_path / 'checkout'
    root.mkdir()
    (root / 'README.md').write_text('stand-in\n')
    (root / 'net.py').write_text(
        'import torch.nn as nn\n\n'
        'def tiny_net(num_classes=1000):\n'
        '    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n')
    out = tmp_path / 'bench'
    assert benchmark.main(['--pair', f"resnet10t(num_classes=4)={root / 'net.py'}:tiny_net(4)", '--train',
                           '--dtype', 'bf16', '--sizes', '32', '--batch-size', '2', '--rounds', '1', '--steps', '1',
                           '--out-dir', str(out)]) == 0
    recs = json.loads((out / 'pair.json').read_text())['results']
    assert [r['mode'] for r in recs] == ['forward', 'train'] and all(r['dtype'] == 'bf16' for r in recs)
    assert not any('error' in r for r in recs)
    if native:
        assert len(runs) == 1 and all(r['zoo_ms'] > 0 and isinstance(r['speed'], float) for r in recs)
    else:
        assert runs == [] and all(r['speed'] == why and 'zoo_ms' not in r for r in recs)
        assert why in (out / 'pair.md').read_text()
    assert benchmark.main(['resnet10t', '--profile', '--dtype', 'bf16', '--sizes', '32', '--batch-size', '1',
                           '--warmup', '0', '--repeats', '1', '--out-dir', str(out)]) == 0
    text = (out / 'profile_resnet10t_32.txt').read_text()
    assert ('aten::' in text) == native and (why in text) == (not native)
    assert capsys.readouterr().err.count(why) == (0 if native else 2)  # the one note of each run


def test_pair_spec_errors(tmp_path):
    from zoo.errors import UserError
    with pytest.raises(UserError, match='expected ZOO_MODEL'):
        bench.parse_pair('zoo_biformer_tiny')
    with pytest.raises(UserError, match='does not exist'):
        bench.parse_pair(f'zoo_biformer_tiny={tmp_path}/nope.py:biformer_tiny')
    f = tmp_path / 'm.py'
    f.write_text('x = 1\n')
    with pytest.raises(UserError, match='literal'):
        bench.parse_pair(f'zoo_biformer_tiny={f}:make(os.getcwd())')


def test_family_plot_draws_only_its_own_counterparts():
    """Each family's plot: its models, the timm implementation of its design and the official code measured for
    it (--pair --plot), never the other baselines of the run."""
    recs = [dict(model=m, img_size=s, latency_ms=1.0, peak_mem_mb=1.0, **extra) for s in (224, 512)
            for m, extra in (('zoo_resnet50_cbam', {}), ('zoo_coat_lite_tiny', {}), ('coat_lite_tiny', {}),
                             ('resnet50', {}), ('/x/model_resnet.py:ResidualNet()', dict(counterpart_of='zoo_resnet50_cbam')))]
    recs.append(dict(model='zoo_halonet_h1', img_size=256, error='boom'))
    groups = {fam: sorted({r['model'] for r in rs}) for fam, rs in bench.family_groups(recs).items()}
    assert groups == {'zoo_cbam': ['/x/model_resnet.py:ResidualNet()', 'zoo_resnet50_cbam'],
                      'zoo_coat': ['coat_lite_tiny', 'zoo_coat_lite_tiny']}


@pytest.mark.slow  # end-to-end runs of several models in fresh processes
def test_pair_plot_measures_both_sides(tmp_path):
    """--pair with --plot: the official side is measured like a model at every size and drawn in its zoo family's
    plot (labelled, tagged with its zoo counterpart)."""
    root = tmp_path / 'checkout'
    root.mkdir()
    (root / 'README.md').write_text('stand-in\n')
    (root / 'net.py').write_text(
        'import torch.nn as nn\n\n'
        'def tiny_net(num_classes=1000):\n'
        '    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n')
    out = tmp_path / 'bench'
    rc = benchmark.main(['--pair', f"zoo_resnet18_cbam(num_classes=10)={root / 'net.py'}:tiny_net(10)", '--plot',
                         '--sizes', '32', '48', '--batch-size', '1', '--repeats', '1', '--warmup', '0', '--no-train',
                         '--no-flops', '--no-peak', '--out-dir', str(out)])
    assert rc == 0
    recs = json.loads((out / 'results.json').read_text())['results']
    assert not any('error' in r for r in recs)
    official = [r for r in recs if r.get('counterpart_of') == 'zoo_resnet18_cbam']
    assert [r['img_size'] for r in official] == [32, 48] and official[0]['label'] == 'official net.py:tiny_net(10)'
    assert official[0]['params_m'] * 1e6 == 3 * 4 * 9 + 4 + 4 * 10 + 10
    zoo_recs = [r for r in recs if r['model'] == 'zoo_resnet18_cbam']
    assert len(zoo_recs) == 2 and all(r['latency_ms_ratio'] > 0 for r in zoo_recs)  # ratio to the official side
    assert (out / 'scaling_zoo_cbam.png').stat().st_size > 0


@pytest.mark.slow  # end-to-end runs of several models in fresh processes
def test_profile_below_profiles_the_slow_models(tmp_path):
    """--profile-below FRAC: a per-op profile for each model under FRAC of the matmul peak (every model under 1.0)."""
    out = tmp_path / 'bench'
    rc = benchmark.main(['resnet10t', '--sizes', '32', '--batch-size', '2', '--repeats', '2', '--warmup', '1',
                         '--no-train', '--peak-alternate', '--profile-below', '1.0', '--out-dir', str(out)])
    assert rc == 0
    rec = json.loads((out / 'results.json').read_text())['results'][0]
    assert rec['frac_peak_fp32_alt_min'] <= rec['frac_peak_fp32_alt'] <= rec['frac_peak_fp32_alt_max']
    assert rec['matmul_peak_fp32_alt_tflops'] > 0
    text = (out / 'profile_resnet10t_32.txt').read_text()
    assert 'of the matmul peak' in text.splitlines()[0] and 'aten::' in text


def test_train_loop_case_alternates_on_one_model():
    """--reference train_loop: the trainer's loop and the bare loop in alternating rounds in one process, on the
    same model and batches, with the same optimizer (plain SGD with momentum on both sides)."""
    out = bench.train_loop_case('alternate', img_size=32, steps=1, rounds=2, batch_size=2)
    z, r = out['records']
    assert (z['impl'], r['impl']) == ('zoo', 'reference') and z['same_optimizer'] is True
    assert "'nesterov': False" in z['optimizer'] and z['rounds'] == r['rounds'] == 2
    assert z['img_s_ratio_min'] <= z['img_s_ratio_max'] and z['ms'] > 0 and r['ms'] > 0


@pytest.mark.parametrize('old, new', [
    (['resnet10t', '--sizes', '32'], ['models', 'resnet10t', '--sizes', '32']),
    (['resnet10t', '--profile', '--profile-rows', '5'], ['profile', 'resnet10t', '--profile-rows', '5']),
    (['--reference', 'train_loop', '--rounds', '2'], ['reference', 'train_loop', '--rounds', '2']),
    (['--pair', 'a=b.py:c', '--pair', 'd=e.py:f', '--train'], ['pair', 'a=b.py:c', 'd=e.py:f', '--train']),
    (['--readme', '--readme-file', 'R.md', '--no-throughput'], ['readme', 'R.md', '--no-throughput']),
])
def test_subcommands_and_their_old_flags_parse_alike(old, new):
    """Each subcommand and the single-command flag that selects it give the same arguments (the mode flags aside)."""
    parse = lambda argv: {k: v for k, v in vars(benchmark.build_parser().parse_args(argv)).items()  # noqa: E731
                          if k not in ('readme', 'profile')}
    assert parse(old) == parse(new) and parse(new)['command'] == new[0]


def test_subcommands_and_old_flags_fail_alike(tmp_path, capsys):
    """The same one-line error and exit status 2 in both spellings."""
    cases = [(['--pair', 'zoo_biformer_tiny'], ['pair', 'zoo_biformer_tiny'], 'error: --pair '),
             ([], ['models'], 'error: name models or baselines'),
             (['--profile'], ['profile'], 'error: name models or baselines'),
             (['--readme', '--readme-models', 'zoo_no_such_*', '--no-throughput', '--readme-file', str(tmp_path / 'R.md')],
              ['readme', str(tmp_path / 'R.md'), '--readme-models', 'zoo_no_such_*', '--no-throughput'],
              f'error: --readme: {tmp_path / "R.md"} does not exist (give --readme-file)')]
    for old, new, message in cases:
        errs = []
        for argv in (old, new):
            try:
                rc = benchmark.main(argv + ['--out-dir', str(tmp_path)])
            except SystemExit as e:  # a parser error (zoo.cli.ArgumentParser.error)
                rc = e.code
            assert rc == 2
            errs.append(capsys.readouterr().err)
        assert errs[0] == errs[1] and errs[0].startswith(message), errs


def test_readme_subcommand_writes_the_given_file(tmp_path, capsys):
    """readme FILE (and --readme --readme-file FILE) rewrite the table between the markers of that file only."""
    from zoo.model_table import END, START
    readme = tmp_path / 'README.md'
    for argv in (['readme', str(readme)], ['--readme', '--readme-file', str(readme)]):
        readme.write_text(f'# title\n\n{START}\nold\n{END}\n\nrest\n')
        assert benchmark.main(argv + ['--readme-models', 'zoo_no_such_*', '--no-throughput',
                                      '--out-dir', str(tmp_path)]) == 0
        text = readme.read_text()
        assert 'old' not in text and text.startswith('# title') and text.endswith('rest\n')
        assert '| model | input |' in text and 'Export: export_status.json' in text
    assert (tmp_path / 'model_table.md').is_file()
