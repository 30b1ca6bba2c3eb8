"""zoo.mm.ZooBackbone and the det/seg configs, with mmengine + timm only (no mmcv ops, mmdet or mmseg models)."""
import glob
import importlib.util
import os
import subprocess
import sys

import pytest
import timm
import torch
import torch.nn as nn

pytest.importorskip('mmengine', reason='zoo.mm needs mmengine')

import zoo  # noqa: E402,F401
import zoo.mm  # noqa: E402
from zoo.mm import ZooBackbone  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'det', '*.py'))
                 + glob.glob(os.path.join(ROOT, 'configs', 'seg', '*.py')))

# a small model of every family (and a plain timm model)
SMALL = {
    'timm': 'resnet18',
    'cbam': 'zoo_resnet18_cbam',
    'triplet': 'zoo_resnet18_triplet',
    'biformer': 'zoo_biformer_tiny',
    'halonet': 'zoo_halonet_h0',
    'coat': 'zoo_coat_lite_tiny',
    'lkca': 'zoo_lkca_vit_05m',
    'resattnet': 'zoo_resattnet56',
    'overlock': 'zoo_overlock_xt',
}


def _available(name):
    return timm.is_model(name)


def small_models():
    return [pytest.param(n, id=f) if _available(n) else
            pytest.param(n, id=f, marks=pytest.mark.skip(reason=f'{n} is not registered')) for f, n in SMALL.items()]


def _levels(name, **kw):
    m = timm.create_model(name, features_only=True, **kw)
    return m.feature_info.info


def _stride_levels(name):
    """Indices of the last feature level at each stride 4/8/16/32 (what the configs request)."""
    info = _levels(name)
    by = {fi['reduction']: i for i, fi in enumerate(info) if fi['reduction'] in (4, 8, 16, 32)}
    return tuple(by[s] for s in (4, 8, 16, 32)), [info[by[s]]['num_chs'] for s in (4, 8, 16, 32)]


# ---------------------------------------------------------------------------------------------------- import / registry
def test_import_zoo_does_not_need_openmmlab_and_zoo_mm_names_what_is_missing():
    code = ('import sys\n'
            'for m in ("mmcv", "mmdet", "mmseg", "mmengine"): sys.modules[m] = None\n'
            'import zoo, timm\n'
            'assert "zoo.mm" not in sys.modules\n'
            'print("zoo ok")\n'
            'try:\n    import zoo.mm\nexcept ImportError as e:\n    print("ERR", e)\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert 'zoo ok' in r.stdout, r.stderr[-2000:]
    assert 'ERR' in r.stdout and 'mmengine' in r.stdout.split('ERR', 1)[1], r.stdout + r.stderr[-2000:]
    with pytest.raises(ImportError, match='definitely_not_a_package_xyz'):
        zoo.mm.require('definitely_not_a_package_xyz')


def test_registered_in_mmengine_and_available_scopes():
    from mmengine.registry import MODELS
    assert MODELS.get('ZooBackbone') is ZooBackbone
    info = zoo.mm.registered()
    assert 'mmengine.MODELS' in info['registered']
    for scope in ('mmdet', 'mmseg'):
        if f'{scope}.MODELS' in info['registered']:
            reg = importlib.import_module(f'{scope}.registry')
            assert reg.MODELS.get('ZooBackbone') is ZooBackbone
        else:
            assert scope in info['errors']
    m = MODELS.build(dict(type='ZooBackbone', model_name='resnet18', out_indices=(2, 3, 4)))
    assert isinstance(m, ZooBackbone) and m.out_channels == [128, 256, 512]


# --------------------------------------------------------------------------------------------------- every family
@pytest.mark.parametrize('name', small_models())
def test_family_outputs_match_feature_info(name):
    torch.manual_seed(0)
    idx, chs = _stride_levels(name)
    b = ZooBackbone(name, out_indices=idx).eval()
    assert b.out_channels == chs and b.out_strides == [4, 8, 16, 32]
    x = torch.randn(2, 3, 72, 100)  # not a multiple of 32: padded internally, outputs cropped to ceil(H / s)
    outs = b(x)
    assert len(outs) == 4
    for o, c, s in zip(outs, chs, (4, 8, 16, 32)):
        assert o.shape == (2, c, -(-72 // s), -(-100 // s)), (name, o.shape, c, s)
    # training mode: loss over every output reaches every trainable parameter of the requested levels
    b.train()
    sum(o.float().mean() for o in b(x)).backward()
    no_grad = [n for n, p in b.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:10]


@pytest.mark.parametrize('name', small_models())
def test_family_frozen_stages(name):
    idx, _ = _stride_levels(name)
    b = ZooBackbone(name, out_indices=idx, frozen_stages=idx[0], norm_eval=True)
    b.train()
    frozen = [n for n, p in b.named_parameters() if not p.requires_grad]
    trainable = [n for n, p in b.named_parameters() if p.requires_grad]
    assert frozen
    # isotropic models (LKCA) derive every pyramid level from the last block: freezing level 0 freezes all
    assert trainable or 'lkca' in name
    outs = b(torch.randn(1, 3, 64, 64))
    if trainable:
        sum(o.mean() for o in outs).backward()
    assert all(p.grad is None for p in b.parameters() if not p.requires_grad)
    # frozen modules and every BatchNorm stay in eval mode after train()
    assert b._frozen_modules and all(not m.training for m in b._frozen_modules)
    bns = [m for m in b.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in bns)
    # a frozen level is exactly what the level's output depends on: later levels still train
    b2 = ZooBackbone(name, out_indices=idx, frozen_stages=idx[-1])
    assert all(not p.requires_grad for p in b2.parameters())


# ----------------------------------------------------------------------------------------------------- arguments
def test_norm_eval_only_touches_batchnorm():
    b = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), norm_eval=True).train()
    bns = [m for m in b.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert b.body.layer1.training
    b = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), norm_eval=False).train()
    assert all(m.training for m in b.modules() if isinstance(m, nn.BatchNorm2d))


def test_frozen_stages_matches_mmdet_resnet_convention():
    b = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), frozen_stages=1)
    frozen = {n.split('.')[1] for n, p in b.named_parameters() if not p.requires_grad}
    assert frozen == {'conv1', 'bn1', 'layer1'}
    b = ZooBackbone('resnet18', out_indices=(2, 3, 4), frozen_stages=0)
    assert {n.split('.')[1] for n, p in b.named_parameters() if not p.requires_grad} == {'conv1', 'bn1'}


def _check_with_cp(a, b, x):
    """``b`` (with_cp=True, eval mode) given ``a``'s weights gives ``a``'s outputs, and in train mode a gradient for
    every parameter."""
    b.load_state_dict(a.state_dict())
    outs_a, outs_b = a(x), b(x)
    assert len(outs_a) == len(outs_b)
    for oa, ob in zip(outs_a, outs_b):
        torch.testing.assert_close(oa, ob)
    b.train()
    sum(o.mean() for o in b(x)).backward()
    assert all(p.grad is not None for p in b.parameters())


def test_with_cp_same_output_and_grads():
    torch.manual_seed(0)
    a = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4)).eval()
    b = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), with_cp=True).eval()
    _check_with_cp(a, b, torch.randn(1, 3, 64, 64, requires_grad=True))


def test_with_cp_getter_model():
    name = 'zoo_biformer_tiny'
    if not _available(name):
        pytest.skip(f'{name} is not registered')
    torch.manual_seed(0)
    a = ZooBackbone(name).eval()
    b = ZooBackbone(name, with_cp=True).eval()
    assert any(getattr(m, 'grad_checkpointing', False) is True for m in b.modules())
    _check_with_cp(a, b, torch.randn(1, 3, 64, 64))


def test_drop_path_rate_reaches_model():
    name = 'zoo_biformer_tiny' if _available('zoo_biformer_tiny') else 'convnext_atto'
    b = ZooBackbone(name, drop_path_rate=0.3)
    probs = [m.drop_prob for m in b.modules() if type(m).__name__ == 'DropPath']
    assert probs and max(probs) == pytest.approx(0.3, abs=1e-6)


def test_out_norms_and_out_strides():
    b = ZooBackbone('resnet18', out_indices=(2, 3), out_norms=True)
    assert isinstance(b.out_norms[0], timm.layers.LayerNorm2d) and b.out_norms[0].eps == 1e-6
    o = b(torch.randn(2, 3, 64, 64))[0]
    torch.testing.assert_close(o.mean(1), torch.zeros_like(o.mean(1)), atol=1e-4, rtol=0)
    # an isotropic ViT resampled into a stride 8/16/32 pyramid
    v = ZooBackbone('vit_tiny_patch16_224', out_indices=(9, 10, 11), out_strides=(8, 16, 32), img_size=64,
                    dynamic_img_size=True)
    assert v.native_strides == [16, 16, 16] and v.out_strides == [8, 16, 32]
    assert [tuple(o.shape[-2:]) for o in v(torch.randn(1, 3, 64, 96))] == [(8, 12), (4, 6), (2, 3)]


def test_padding_equals_padded_input():
    torch.manual_seed(0)
    b = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4)).eval()
    assert b.pad_to_multiple == 32
    x = torch.randn(1, 3, 70, 90)
    xp = torch.nn.functional.pad(x, (0, 6, 0, 26))
    ref = b.body(xp)
    for o, r, s in zip(b(x), ref, (4, 8, 16, 32)):
        torch.testing.assert_close(o, r[..., :-(-70 // s), :-(-90 // s)])
    nb = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), crop_outputs=False).eval()
    nb.load_state_dict(b.state_dict())
    assert [tuple(o.shape[-2:]) for o in nb(x)] == [(24, 24), (12, 12), (6, 6), (3, 3)]
    off = ZooBackbone('resnet18', out_indices=(4,), pad_to_multiple=None)
    assert off.pad_to_multiple == 0 and off(x)[0].shape[-2:] == (3, 3)


# ------------------------------------------------------------------------------------------------------ weights
def test_pretrained_classification_checkpoint_file(tmp_path):
    torch.manual_seed(1)
    cls = timm.create_model('resnet18', num_classes=10)
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': cls.state_dict()}, path)
    for kwargs in (dict(pretrained=str(path)), dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))):
        b = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), **kwargs)
        torch.testing.assert_close(b.body.layer3[0].conv1.weight, cls.layer3[0].conv1.weight)
        assert b.is_init  # mmengine's init_weights leaves the loaded weights alone
        b.init_weights()
        torch.testing.assert_close(b.body.conv1.weight, cls.conv1.weight)


def test_pretrained_zoo_tag_with_local_file(tmp_path):
    name = 'zoo_resnet18_cbam'
    if not _available(name):
        pytest.skip(f'{name} is not registered')
    torch.manual_seed(2)
    cls = timm.create_model(name)
    path = tmp_path / 'w.pth'
    torch.save(cls.state_dict(), path)
    tags = timm.list_pretrained(name + '.*')
    model_name = tags[0] if tags else name
    b = ZooBackbone(model_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), out_indices=(1, 2, 3, 4))
    ref = dict(cls.named_parameters())
    for n, p in b.body.named_parameters():
        torch.testing.assert_close(p, ref[n])


def test_init_cfg_detector_checkpoint(tmp_path):
    torch.manual_seed(3)
    src = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), out_norms=True)
    for p in src.out_norms.parameters():
        nn.init.normal_(p)
    det = {'meta': {}, 'state_dict': {**{'backbone.' + k: v for k, v in src.state_dict().items()},
                                      'neck.lateral.weight': torch.zeros(1)}}
    path = tmp_path / 'det.pth'
    torch.save(det, path)
    dst = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4), out_norms=True,
                      init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    dst.init_weights()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)
    # missing tensors are named (a checkpoint of another architecture)
    other = ZooBackbone('resnet34', out_indices=(1, 2, 3, 4),
                        init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    with pytest.raises(ValueError, match='missing .*layer'):
        other.init_weights()
    # a classification checkpoint is refused with a pointer to the right loading path
    torch.save(timm.create_model('resnet18').state_dict(), tmp_path / 'cls.pth')
    wrong = ZooBackbone('resnet18', out_indices=(1, 2, 3, 4),
                        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cls.pth'), prefix='backbone.'))
    with pytest.raises(ValueError, match='pretrained_cfg_overlay'):
        wrong.init_weights()


# --------------------------------------------------------------------------------------------------- bad input
def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown model 'zoo_resnet18_cbamm'"):
        ZooBackbone('zoo_resnet18_cbamm')


def test_out_indices_outside_levels():
    with pytest.raises(ValueError, match=r'\[5\] outside its feature levels 0\.\.4'):
        ZooBackbone('resnet18', out_indices=(1, 5))
    with pytest.raises(ValueError, match='increasing'):
        ZooBackbone('resnet18', out_indices=(3, 1))
    with pytest.raises(ValueError, match='frozen_stages=9'):
        ZooBackbone('resnet18', frozen_stages=9)
    b = ZooBackbone('resnet18', out_indices=(-2, -1))
    assert b.out_indices == (3, 4)


def test_wrong_input_channels():
    b = ZooBackbone('resnet18', out_indices=(4,))
    with pytest.raises(ValueError, match='N x 3 x H x W'):
        b(torch.randn(1, 4, 32, 32))


# ------------------------------------------------------------------------------------------------------- configs
def _backbone_dicts(cfg):
    out = []

    def walk(d):
        if isinstance(d, dict):
            if d.get('type') == 'ZooBackbone':
                out.append(d)
            for v in d.values():
                walk(v)
        elif isinstance(d, (list, tuple)):
            for v in d:
                walk(v)
    walk(cfg.model)
    return out


_LEVEL_CACHE = {}


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_config_in_channels_match_feature_info(path):
    from mmengine.config import Config
    pkg = 'mmdet' if '/det/' in path else 'mmseg'
    if importlib.util.find_spec(pkg) is None:
        pytest.skip(f'{pkg} (its shipped base configs) is not installed')
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['zoo.mm']
    (bb,) = _backbone_dicts(cfg)
    name = bb['model_name']
    if not _available(name.split('.')[0]):
        pytest.skip(f'{name} is not registered')
    skip = {'type', 'model_name', 'pretrained', 'out_indices', 'frozen_stages', 'norm_eval', 'with_cp',
            'drop_path_rate', 'out_norms', 'out_norm_eps', 'out_strides', 'pad_to_multiple', 'crop_outputs',
            'init_cfg', 'pretrained_cfg_overlay', '_delete_'}
    kwargs = {k: v for k, v in bb.items() if k not in skip}
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _LEVEL_CACHE:
        _LEVEL_CACHE[key] = _levels(name, **kwargs)
    info = _LEVEL_CACHE[key]
    chs = [info[i]['num_chs'] for i in bb['out_indices']]
    strides = [info[i]['reduction'] for i in bb['out_indices']]
    m = cfg.model
    if m.type == 'RetinaNet':
        assert list(m.neck.in_channels) == chs and strides == [8, 16, 32]
        assert m.neck.start_level == 0 and m.neck.num_outs == 5
    elif m.type in ('MaskRCNN', 'CascadeRCNN'):
        assert list(m.neck.in_channels) == chs and strides == [4, 8, 16, 32]
    elif m.type == 'EncoderDecoder':
        assert m.pretrained is None  # otherwise EncoderDecoder hands its own `pretrained` to the backbone
        assert strides == [4, 8, 16, 32]
        if m.get('neck'):
            assert list(m.neck.in_channels) == chs
        else:
            assert list(m.decode_head.in_channels) == chs
        if m.get('auxiliary_head'):
            assert m.auxiliary_head.in_channels == chs[m.auxiliary_head.in_index]
    else:
        pytest.fail(f'unexpected model type {m.type}')
    if 'coco' in path:
        heads = [m.bbox_head] if m.type == 'RetinaNet' else m.roi_head.bbox_head
        heads = heads if isinstance(heads, list) else [heads]  # Cascade R-CNN: one per stage
        assert len(heads) == m.get('roi_head', {}).get('num_stages', 1)
        assert all(h.num_classes == 80 for h in heads)
    if 'ade20k' in path:
        assert m.decode_head.num_classes == 150
    if 'biformer' in path:
        assert bb['n_win'] == (16 if '/det/' in path else 8) and bb['out_norms']
    if bb.get('pretrained') is True:  # the weights must be loadable without a manual download
        assert timm.list_pretrained(name.split('.')[0] + '*'), f'{name}: pretrained=True but no downloadable weights'


def test_every_family_has_the_four_configs():
    slugs = ['zoo-resnet50-cbam', 'zoo-resnet50-triplet', 'zoo-biformer-small', 'zoo-halonet-h1',
             'zoo-coat-lite-small', 'zoo-lkca-vit-2m', 'zoo-resattnet56', 'zoo-overlock-t']
    names = {os.path.basename(p) for p in CONFIGS}
    for s in slugs:
        assert f'retinanet_{s}_fpn_1x_coco.py' in names, s
        assert f'mask-rcnn_{s}_fpn_1x_coco.py' in names, s
        assert any(n.startswith(f'{s}_upernet_') and '160k_ade20k' in n for n in names), s
        assert any(n.startswith(f'{s}_fpn_') and '80k_ade20k' in n for n in names), s


def test_shapes_config_classes_match_generator():
    from mmengine.config import Config
    from zoo.data import shapes
    det = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'det', 'shapes_instance.py'))
    seg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'seg', 'shapes_segmentation.py'))
    assert tuple(det.metainfo['classes']) == tuple(shapes.CLASSES)
    assert tuple(seg.metainfo['classes']) == tuple(shapes.SEG_CLASSES)
    assert [tuple(c) for c in seg.metainfo['palette']] == [tuple(c) for c in shapes.SEG_PALETTE]


def test_check_config_reports_missing_paths_and_unknown_backbone(tmp_path):
    from mmengine.config import Config
    from zoo.mm.configs import ConfigError
    from zoo.mm.runner import check_config
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'det', 'shapes_instance.py'))
    cfg.model = dict(type='RetinaNet', backbone=dict(type='ZooBackbone', model_name='resnet18'))
    for name in ('train_dataloader', 'val_dataloader'):
        cfg[name].dataset.data_root = str(tmp_path / 'nope')
    cfg.val_evaluator.ann_file = str(tmp_path / 'nope' / 'instances_val.json')
    with pytest.raises(ConfigError) as e:
        check_config(cfg)
    msg = str(e.value)
    assert 'train_dataloader.dataset.data_root' in msg and 'nope' in msg and 'val_evaluator.ann_file' in msg
    cfg.model.backbone.model_name = 'zoo_not_a_model'
    with pytest.raises(ConfigError, match="model.backbone: ZooBackbone: unknown model 'zoo_not_a_model'"):
        check_config(cfg)


# ------------------------------------------------------------------------------------------------- safe loading
class _GetattrPayload:
    """Unpickles through ``builtins.getattr`` (what numpy 2 dtype pickles use, and a building block of exploits)."""

    def __reduce__(self):
        import builtins
        return builtins.getattr, ('abc', 'upper')


def test_import_zoo_mm_leaves_the_weights_only_allowlist_alone(tmp_path):
    import builtins
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer

    from zoo import checkpoint, hub
    allowed = torch.serialization.get_safe_globals()
    assert builtins.getattr not in allowed and HistoryBuffer not in allowed
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': _GetattrPayload()}, path)
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(path, weights_only=True)
    with pytest.raises(hub.UnsafeCheckpointError, match='getattr'):
        hub.safe_load(path)
    with pytest.raises(checkpoint.UnsafeCheckpointError, match='getattr'):
        checkpoint.load(path)
    # mmengine's own loader (the only place the mmengine allowlist applies) still loads it, and leaves no trace
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    assert _load_checkpoint(str(path), map_location='cpu')['x']() == 'ABC'
    assert CheckpointLoader.load_checkpoint(str(path), map_location='cpu')['x']() == 'ABC'
    assert builtins.getattr not in torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def _toy_runner(work_dir, name, epochs=1, **kwargs):
    import torch.nn.functional as F
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import DataLoader

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.backbone = ZooBackbone('resnet18', out_indices=(4,))
            self.head = nn.Linear(512, 2)
            self.steps = 0

        def forward(self, inputs, labels=None, mode='tensor'):
            logits = self.head(self.backbone(inputs)[-1].mean((2, 3)))
            if mode == 'loss':
                self.steps += 1
                return dict(loss=F.cross_entropy(logits, labels))
            return logits

    g = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(3, 32, 32, generator=g), labels=torch.tensor(i % 2)) for i in range(4)]
    return Runner(model=Toy(), work_dir=str(work_dir), experiment_name=name,
                  train_dataloader=DataLoader(data, batch_size=2), train_cfg=dict(by_epoch=True, max_epochs=epochs),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                  default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
                  randomness=dict(seed=0), log_level='WARNING', **kwargs)


def test_mmengine_checkpoints_still_load_resume_and_load_from(tmp_path):
    import builtins
    import pickle
    work = tmp_path / 'work'
    first = _toy_runner(work, 'zoo_safe_first')
    first.train()
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    # the Runner's checkpoint carries mmengine/numpy objects that plain weights-only loading refuses
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)
    # --resume: continues at epoch 1 and trains only the second epoch (2 steps)
    resumed = _toy_runner(work, 'zoo_safe_resume', epochs=2, resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.train_loop.epoch == 2 and resumed.model.steps == 2
    # load_from: the weights, not the training state
    loaded = _toy_runner(tmp_path / 'work2', 'zoo_safe_load_from', load_from=str(ckpt))
    loaded.load_or_resume()
    saved = first.model.state_dict()
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, saved[k])
    # the backbone of the Runner checkpoint through init_cfg (zoo.checkpoint.load with mmengine's types, per call)
    b = ZooBackbone('resnet18', out_indices=(4,),
                    init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'))
    b.init_weights()
    for k, v in b.state_dict().items():
        torch.testing.assert_close(v, saved['backbone.' + k])
    assert builtins.getattr not in torch.serialization.get_safe_globals()
