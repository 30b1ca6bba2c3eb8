"""zoo.checkpoint: safe loading with a per-call allowlist, state-dict checks, the classifier, atomic writes."""
import argparse
import builtins
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import timm
from zoo import checkpoint as ckpt
from zoo.models import _helpers


class _GetattrPayload:
    """Unpickles through ``builtins.getattr`` (the building block of many pickle exploits)."""

    def __reduce__(self):
        return builtins.getattr, ('abc', 'upper')


def test_helpers_reexport_the_same_objects():
    for name in ('CheckpointError', 'unwrap_state_dict', 'strip_prefix', 'check_state_dict'):
        assert getattr(_helpers, name) is getattr(ckpt, name)
    assert issubclass(ckpt.UnsafeCheckpointError, ckpt.CheckpointError)
    assert issubclass(ckpt.CheckpointError, ValueError)


def test_load_allows_namespace_only_during_the_call(tmp_path):
    path = tmp_path / 'train.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'args': argparse.Namespace(lr=0.1)}, path)
    before = set(torch.serialization.get_safe_globals())
    obj = ckpt.load(path)
    assert obj['args'].lr == 0.1 and torch.equal(obj['state_dict']['w'], torch.ones(2))
    assert set(torch.serialization.get_safe_globals()) == before
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
    with pytest.raises(Exception, match='Namespace'):  # torch itself still refuses it outside the call
        torch.load(path, weights_only=True)


def test_getattr_pickle_is_refused(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'x': _GetattrPayload()}, path)
    with pytest.raises(ckpt.UnsafeCheckpointError, match='getattr'):
        ckpt.load(path)
    # ... unless the caller allowlists it for that one call (as zoo.mm does for mmengine checkpoints)
    assert ckpt.load(path, extra_globals=[builtins.getattr])['x']() == 'ABC'
    assert builtins.getattr not in torch.serialization.get_safe_globals()
    with pytest.raises(ckpt.UnsafeCheckpointError):
        ckpt.load(path)


def test_allow_globals_nests_without_removing_outer_entries(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'x': _GetattrPayload()}, path)
    with ckpt.allow_globals([builtins.getattr]):
        ckpt.load(path)  # inner context: getattr was already allowed, it must stay allowed afterwards
        assert builtins.getattr in torch.serialization.get_safe_globals()
        assert torch.load(path, weights_only=True)['x']() == 'ABC'
    assert builtins.getattr not in torch.serialization.get_safe_globals()


def test_state_dict_from_unwraps_and_cleans():
    sd = {'a.weight': torch.ones(1)}
    assert ckpt.state_dict_from({'state_dict': {'module.a.weight': sd['a.weight']}}).keys() == sd.keys()
    assert ckpt.state_dict_from({'state_dict_ema': sd, 'state_dict': {'b': torch.ones(1)}}).keys() == sd.keys()
    assert ckpt.state_dict_from({'state_dict_ema': sd, 'state_dict': {'b': torch.ones(1)}},
                                use_ema=False).keys() == {'b'}
    assert ckpt.state_dict_from({'_orig_mod.module.a.weight': torch.ones(1)}).keys() == sd.keys()
    with pytest.raises(ckpt.CheckpointError, match='non-tensor entries'):
        ckpt.unwrap_state_dict({'epoch': 3, 'w': torch.ones(1)})
    with pytest.raises(ckpt.CheckpointError, match='got list'):
        ckpt.unwrap_state_dict([torch.ones(1)])


def test_check_state_dict_names_every_problem():
    model = timm.create_model('resnet18', num_classes=10)
    sd = dict(model.state_dict())
    sd.pop('layer1.0.conv1.weight')
    sd['extra.weight'] = torch.ones(1)
    sd['layer2.0.conv1.weight'] = torch.ones(128, 64, 5, 5)
    sd['fc.weight'] = torch.ones(1000, 512)  # the classifier's shape is not compared (timm adapts it)
    with pytest.raises(ckpt.CheckpointError) as ei:
        ckpt.check_state_dict(sd, model, source='my.pth')
    msg = str(ei.value)
    assert msg.startswith('my.pth does not match ResNet:')
    assert 'missing 1 tensors: layer1.0.conv1.weight' in msg
    assert 'unexpected 1 tensors: extra.weight' in msg
    assert 'wrongly shaped 1 tensors: layer2.0.conv1.weight (checkpoint (128, 64, 5, 5), model (128, 64, 3, 3))' in msg
    assert 'fc.weight' not in msg
    ok = ckpt.check_state_dict({k: v for k, v in sd.items() if k not in ('layer2.0.conv1.weight',)}
                               | {'layer2.0.conv1.weight': model.state_dict()['layer2.0.conv1.weight']},
                               model, allow_missing=('layer1.',), allow_unexpected=True)
    assert 'extra.weight' in ok
    diff = ckpt.compare_state_dict(model.state_dict(), model)
    assert not diff


def test_load_into_filters_keeps_a_new_head_and_checks_once(tmp_path):
    src = timm.create_model('resnet10t', num_classes=10)
    torch.save({'state_dict_ema': {'module.' + k: v for k, v in src.state_dict().items()}}, tmp_path / 'a.pth')

    @ckpt.key_filter('renamed checkpoint')
    def rename(state_dict, model):
        return {k.replace('old.', 'fc.'): v for k, v in state_dict.items()}

    dst = timm.create_model('resnet10t', num_classes=6)
    assert ckpt.load_into(dst, tmp_path / 'a.pth', filter_fn=rename, new_head=True) == ['fc.weight', 'fc.bias']
    assert torch.equal(dst.state_dict()['conv1.0.weight'], src.state_dict()['conv1.0.weight'])
    with pytest.raises(ckpt.CheckpointError, match=r'^ckpt does not match net:\n  wrongly shaped 2 tensors: fc\.bias'):
        ckpt.load_into(dst, tmp_path / 'a.pth', label='ckpt', target='net')
    sd = {('old.' + k[3:] if k.startswith('fc.') else k): v for k, v in src.state_dict().items()}
    del sd['conv1.0.weight']
    with pytest.raises(ckpt.CheckpointError, match='^renamed checkpoint does not match ResNet:\n  missing 1 tensors'):
        ckpt.convert_and_check(sd, src, rename)
    assert rename(sd, src).keys() == {k for k in src.state_dict() if k != 'conv1.0.weight'}  # a rename, no check


def test_classifier_and_class_count():
    model = timm.create_model('resnet18', num_classes=7)
    assert ckpt.classifier_names(model) == ('fc',)
    sd = model.state_dict()
    assert ckpt.find_classifier(sd, model) == 'fc'
    assert ckpt.num_classes(sd, model) == 7
    assert ckpt.num_classes(sd, ['head', 'fc']) == 7
    assert ckpt.num_classes({k: v for k, v in sd.items() if not k.startswith('fc.')}, model) is None
    assert ckpt.num_classes(sd, {'classifier': 'fc'}) == 7


def test_atomic_write_replaces_or_leaves_the_old_file(tmp_path):
    path = tmp_path / 'sub' / 'f.txt'
    ckpt.atomic_write_text(path, 'one')
    os.chmod(path, 0o640)
    with pytest.raises(RuntimeError):
        with ckpt.atomic_write(path, 'w') as f:
            f.write('half')
            raise RuntimeError('crash while writing')
    assert path.read_text() == 'one' and sorted(os.listdir(path.parent)) == ['f.txt']
    ckpt.atomic_write_text(path, 'two')
    assert path.read_text() == 'two' and (path.stat().st_mode & 0o777) == 0o640  # permissions kept
    out = ckpt.atomic_save({'w': torch.arange(3)}, tmp_path / 'c.pth')
    assert torch.equal(ckpt.load(out)['w'], torch.arange(3))
    ckpt.atomic_copy(out, tmp_path / 'd.pth')
    assert (tmp_path / 'd.pth').read_bytes() == out.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ['c.pth', 'd.pth', 'sub']


def test_safetensors_and_sha256(tmp_path):
    import hashlib
    import safetensors.torch
    p = tmp_path / 'w.bin'  # detected by content, not only by suffix
    safetensors.torch.save_file({'w': torch.ones(3)}, p)
    assert ckpt.is_safetensors(p) and torch.equal(ckpt.load(p)['w'], torch.ones(3))
    assert ckpt.sha256_file(p) == hashlib.sha256(Path(p).read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError):
        ckpt.load(tmp_path / 'nope.pth')
