"""zoo.add_attention: CBAM / triplet gates added to a built (pretrained) timm CNN.

At insertion the model computes its previous function (eval logits exactly, where the requirement is within 1e-5),
in every family the drop-in supports and at the drop-in's positions; the gates learn from the first steps; zoo-train
adds them after the weights load and gives them their own param groups (``gate_lr_mult``) and the backbone a warm-up
(``backbone_warmup_epochs``); a retrofitted checkpoint reloads in zoo-eval, zoo-export and timm;
tools/retrofit_demo.py runs at tiny size.
"""
import json
import math
from functools import partial
from types import SimpleNamespace

import pytest
import timm
import torch
import torch.nn as nn
from timm.layers import SEModule
from timm.models._efficientnet_blocks import SqueezeExcite

import zoo
from zoo.layers import CBAM, TripletAttention
from zoo.retrofit import ATTENTIONS, RetrofitError, add_attention, gate_parameters
from zoo.train import TrainConfig, load_config
from zoo.train.build import build_model, build_optimizer, build_scheduler
from zoo.train.config import ConfigError

# small models of the families the drop-in supports (tests/test_dropin.py); the SE / ECA ones keep theirs
MODELS = ['resnet18', 'test_resnet', 'skresnet18', 'seresnet18', 'test_efficientnet', 'mixnet_s', 'test_byobnet',
          'repvgg_a0', 'test_nfnet', 'nf_resnet26']


def _count(model, cls):
    return sum(type(m) is cls for m in model.modules())


def _randomise_bn(model):
    """Non-trivial BN statistics and affine parameters, as in a trained network."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            if m.weight is not None:
                m.weight.data.uniform_(0.5, 1.5, generator=g)
                m.bias.data.normal_(0, 0.1, generator=g)
    return model


@pytest.mark.parametrize('attention', ['cbam', 'triplet'])
@pytest.mark.parametrize('name', MODELS)
def test_identity_at_insertion(name, attention):
    torch.manual_seed(0)
    model = _randomise_bn(timm.create_model(name, num_classes=5)).eval()
    se_before = _count(model, SEModule) + _count(model, SqueezeExcite)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    assert add_attention(model, attention) is model
    cls = ATTENTIONS[attention]
    assert _count(model, cls) > 0
    assert _count(model, SEModule) + _count(model, SqueezeExcite) == se_before  # an SE in a slot is kept
    assert not model.training  # the modes are restored
    with torch.no_grad():
        after = model(x)
    # the requirement is eval logits within 1e-5; the gates start at exactly 1 (2 * sigmoid(0)): exact
    torch.testing.assert_close(after, before, rtol=0, atol=0)


@pytest.mark.parametrize('attention', ['cbam', 'triplet'])
def test_positions_are_the_dropins(attention):
    """In a ResNet the gates land where the drop-in puts them: the retrofitted state dict is the drop-in model's,
    and that model (built with identity_init) loads it strictly."""
    cls = ATTENTIONS[attention]
    model = add_attention(timm.create_model('resnet18', num_classes=5), attention, kernel_size=3)
    dropin = timm.create_model('resnet18', num_classes=5,
                               block_args=dict(attn_layer=partial(cls, identity_init=True, kernel_size=3)))
    assert sorted(model.state_dict()) == sorted(dropin.state_dict())
    dropin.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dropin.eval()(x), model.eval()(x), rtol=0, atol=0)


def test_nfnet_attention_gain_and_slot():
    """NFNet multiplies its attention output by attn_gain (2): a block whose slots were empty gets gain 1; a block
    with SE keeps its gain and its SE, the gate following it."""
    plain = timm.create_model('nf_resnet26')
    add_attention(plain, 'cbam')
    blocks = [m for m in plain.modules() if type(m).__name__ == 'NormFreeBlock']
    assert all(b.attn_gain == 1.0 and isinstance(b.attn_last, CBAM) and b.attn is None for b in blocks)
    se = add_attention(timm.create_model('test_nfnet'), 'cbam')
    blocks = [m for m in se.modules() if type(m).__name__ == 'NormFreeBlock']
    assert all(b.attn_gain == 2.0 and isinstance(b.attn_last, nn.Sequential) for b in blocks)
    assert all(isinstance(b.attn_last[0], SEModule) and isinstance(b.attn_last[1], CBAM) for b in blocks)


def test_identity_init_layers_are_exactly_the_identity_and_default_layers_unchanged():
    x = torch.randn(2, 16, 7, 9)
    for layer in (CBAM(16, identity_init=True), CBAM(16, spatial=False, identity_init=True),
                  TripletAttention(identity_init=True), TripletAttention(no_spatial=True, identity_init=True)):
        torch.testing.assert_close(layer.eval()(x), x, rtol=0, atol=0)
        torch.testing.assert_close(layer.train()(x), x, rtol=0, atol=0)
    # the default modules keep their official form: a sigmoid gate (0.5 at CBAM's zero-initialised spatial BN)
    assert (CBAM(16).spatial.bn.weight == 0).all() and (TripletAttention().hw.bn.weight == 1).all()
    assert not CBAM(16).channel.identity_init and (CBAM(16).channel.fc2.weight != 0).any()
    ident = CBAM(16, identity_init=True)
    assert set(ident.state_dict()) == set(CBAM(16).state_dict())
    assert (ident.channel.fc2.weight == 0).all() and (ident.channel.fc2.bias == 0).all()


@pytest.mark.parametrize('attention', ['cbam', 'triplet'])
def test_gates_learn(attention):
    """Within three optimiser steps every added parameter has had a non-zero gradient and has moved (in a
    'pretrained' network: timm zero-initialises each block's last BN, which would leave the gates no input)."""
    torch.manual_seed(0)
    model = add_attention(_randomise_bn(timm.create_model('test_resnet', num_classes=4)), attention).train()
    gates = gate_parameters(model)
    assert gates
    start = [p.detach().clone() for p in gates]
    had_grad = [False] * len(gates)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = torch.randn(8, 3, 48, 48), torch.arange(8) % 4
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        had_grad = [h or (p.grad is not None and bool(p.grad.abs().sum() > 0)) for h, p in zip(had_grad, gates)]
        opt.step()
    assert all(had_grad)
    assert all(not torch.equal(p, s) for p, s in zip(gates, start))


def test_user_errors():
    model = timm.create_model('test_resnet')
    with pytest.raises(RetrofitError, match="unknown attention 'se'"):
        add_attention(model, 'se')
    with pytest.raises(RetrofitError, match=r"does not take \['reductio'\]"):
        add_attention(model, 'cbam', reductio=4)
    with pytest.raises(RetrofitError, match='no block with an attention slot'):
        add_attention(timm.create_model('test_vit'), 'cbam')
    add_attention(model, 'triplet')
    with pytest.raises(RetrofitError, match='already has CBAM / triplet'):
        add_attention(model, 'cbam')


# ---------------------------------------------------------------- zoo-train, param groups, warm-up

def test_param_groups_and_backbone_warmup():
    cfg = load_config(None, ['model=test_resnet', 'add_attention=cbam', 'add_attention_kwargs.reduction=4',
                             'lr=1e-3', 'gate_lr_mult=10', 'backbone_warmup_epochs=2', 'warmup_epochs=0',
                             'epochs=4', 'min_lr=0'])
    model, _, _ = build_model(cfg, 3)
    assert all(m.channel.fc1.out_features == m.channel.fc1.in_features // 4
               for m in model.modules() if isinstance(m, CBAM))
    opt = build_optimizer(model, cfg)
    gates = {id(p) for p in gate_parameters(model)}
    for g in opt.param_groups:
        assert all((id(p) in gates) == bool(g.get('gates')) for p in g['params'])
    assert sum(len(g['params']) for g in opt.param_groups) == len(list(model.parameters()))
    sched, _ = build_scheduler(opt, cfg, updates_per_epoch=10)
    lrs = lambda gates: {round(g['lr'], 9) for g in opt.param_groups if bool(g.get('gates')) == gates}  # noqa: E731
    assert lrs(False) == {0.0} and lrs(True) == {1e-2}       # first step: gates at theirs, backbone at 0
    sched.step_update(10)                                     # one epoch of two: the ramp is at 1/2
    cosine = 0.5 * (1 + math.cos(math.pi / 4))  # float64, as timm's scheduler
    assert lrs(False) == {round(1e-3 * cosine / 2, 9)} and lrs(True) == {round(1e-2 * cosine, 9)}
    sched.step_update(30)                                     # past the warm-up: only the schedule
    cosine = 0.5 * (1 + math.cos(3 * math.pi / 4))
    assert lrs(False) == {round(1e-3 * cosine, 9)} and lrs(True) == {round(1e-2 * cosine, 9)}
    with pytest.raises(ConfigError, match='layer_decay'):
        build_optimizer(model, cfg.replace(layer_decay=0.7))
    with pytest.raises(ConfigError, match="sched is 'none'"):
        build_scheduler(opt, cfg.replace(sched='none'), 10)
    # without gates the warm-up ramps every parameter (the plain run of the demo)
    plain, _, _ = build_model(cfg.replace(add_attention=''), 3)
    opt = build_optimizer(plain, cfg)
    build_scheduler(opt, cfg, 10)
    assert not any(g.get('gates') for g in opt.param_groups) and {g['lr'] for g in opt.param_groups} == {0.0}
    with pytest.raises(ConfigError, match="'add_attention' must be one of"):
        load_config(None, ['add_attention=se'])


@pytest.fixture(scope='module')
def retrofitted(tmp_path_factory):
    """A 'pretrained' test_resnet file, and a 1-epoch zoo-train run that adds CBAM to it (the user's flags)."""
    from zoo.cli import train as cli_train
    from zoo.data.shapes import make_classification
    tmp = tmp_path_factory.mktemp('retrofit')
    data = make_classification(tmp / 'shapes', 24, 12, 32, seed=0).root
    torch.manual_seed(0)
    pretrained = _randomise_bn(timm.create_model('test_resnet', num_classes=6)).eval()
    torch.save(pretrained.state_dict(), tmp / 'pretrained.pth')
    argv = ['--model', 'test_resnet', '--pretrained-path', str(tmp / 'pretrained.pth'), '--add-attention', 'cbam',
            '--add-attention-kwargs', 'reduction=4', '--gate-lr-mult', '10', '--backbone-warmup-epochs', '1',
            '--data-dir', str(data), '--shapes-train', '24', '--shapes-val', '12', '--shapes-size', '32',
            '--img-size', '32', '-b', '8', '-j', '0', '--epochs', '1', '--warmup-epochs', '0', '--lr', '1e-3',
            '--log-interval', '0', '--no-tensorboard', '--output', str(tmp / 'out'), '--experiment', 'run']
    assert cli_train.main(argv) == 0
    run = tmp / 'out' / 'run'
    return SimpleNamespace(tmp=tmp, data=data, pretrained=pretrained, run=run,
                           results=json.loads((run / 'results.json').read_text()))


def test_train_adds_gates_after_the_weights(retrofitted):
    """zoo-train: the pretrained file loads, then the gates go in -- the model starts as the pretrained one (its
    features: timm's pretrained path re-initialises the head, the file being for another class count)."""
    from zoo.train import Trainer
    ckpt = torch.load(retrofitted.run / 'last.pth', map_location='cpu', weights_only=True)
    assert ckpt['config']['add_attention'] == 'cbam' and ckpt['config']['add_attention_kwargs'] == {'reduction': 4}
    assert any('.se.channel.fc1.weight' in k for k in ckpt['state_dict'])
    trainer = Trainer(dict(ckpt['config'], experiment='again')).setup()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trainer.model.eval().forward_features(x), retrofitted.pretrained.forward_features(x),
                                   rtol=0, atol=0)
    # continuing from the retrofitted checkpoint: it already has the gates, which go in before it loads
    cfg = dict(ckpt['config'], pretrained_path='', initial_checkpoint=str(retrofitted.run / 'last.pth'))
    model, _, _ = build_model(TrainConfig.from_dict(cfg), 6)
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ckpt['state_dict'].items())


def test_retrofitted_checkpoint_reloads_in_eval_export_and_timm(retrofitted, tmp_path, capsys):
    from zoo.cli import eval as cli_eval, export as cli_export
    last = retrofitted.run / 'last.pth'
    sd = torch.load(last, map_location='cpu', weights_only=True)['state_dict']
    # zoo-eval: the run's record rebuilds the gates; the same top-1 as the run's own evaluation
    assert cli_eval.main(['--checkpoint', str(last), '-j', '0', '--output', str(tmp_path / 'ev.json')]) == 0
    assert json.loads((tmp_path / 'ev.json').read_text())['top1'] == retrofitted.results['final_eval']['top1']
    # zoo-export: TorchScript verified against the eager model
    assert cli_export.main(['test_resnet', '--checkpoint', str(last), '--format', 'torchscript',
                            '--input-size', '3', '32', '32', '--out', str(tmp_path / 'm.pt')]) == 0
    assert (tmp_path / 'm.pt').is_file() and 'max abs diff' in capsys.readouterr().out.lower()
    # timm: add_attention with the recorded arguments, then timm's own checkpoint loader (strict)
    model = zoo.add_attention(timm.create_model('test_resnet', num_classes=6), 'cbam', reduction=4)
    timm.models.load_checkpoint(model, str(last))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    # or the drop-in form of the same architecture (ResNet: every gate in an empty slot)
    dropin = timm.create_model('test_resnet', num_classes=6, checkpoint_path=str(last),
                               block_args=dict(attn_layer=partial(CBAM, reduction=4, identity_init=True)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dropin.eval()(x), model.eval()(x), rtol=0, atol=0)


@pytest.mark.slow
def test_retrofit_demo_tiny(tmp_path):
    """tools/retrofit_demo.py's flow at tiny size: pretrain, two fine-tunes, step-0 difference, reload."""
    from zoo.cli import retrofit_demo
    argv = ['--pretrain-images', '24', '--finetune-images', '24', '--val-images', '12', '--pretrain-epochs', '1',
            '--finetune-epochs', '1', '--img-size', '32', '--output', str(tmp_path / 'out'),
            '--data-dir', str(tmp_path / 'data'), '--set', 'batch_size=8', 'workers=0', 'tensorboard=false',
            'log_interval=0']
    assert retrofit_demo.main(argv) == 0
    res = json.loads((tmp_path / 'out' / 'results.json').read_text())
    assert res['step0_max_abs_logit_diff'] == 0  # the tool's requirement is 1e-5; the insertion is exact
    assert res['retrofit']['num_params'] > res['plain']['num_params']
    assert abs(res['reloaded_retrofit_top1'] - res['retrofit']['top1']) <= 100 / 12
    for run in ('pretrain', 'retrofit', 'plain'):
        assert (tmp_path / 'out' / run / 'last.pth').is_file()
    ft = torch.load(tmp_path / 'out' / 'retrofit' / 'last.pth', map_location='cpu', weights_only=True)['config']
    assert ft['initial_checkpoint'] == str(tmp_path / 'out' / 'pretrain' / 'last.pth')
    assert ft['shapes_seed'] == 1 and ft['add_attention'] == 'cbam' and ft['shapes_size'] == 32
