"""Pretrained weights: verified downloads, conversion to the zoo layout, model cards, Hub export and publishing.

One concern per module (the pipeline behind ``zoo-download`` / ``zoo-convert`` / ``zoo-push`` and
``tools/download.py``, ``tools/convert.py``, ``tools/push_to_hub.py``):

* :mod:`zoo.checkpoint` -- safe loading (:func:`safe_load`), unwrapping, checking, atomic writes; the error classes.
* :mod:`zoo.hub.download` -- :func:`download` / :func:`fetch` an official file with a progress bar into the cache
  (``$ZOO_CACHE_DIR/checkpoints``, default ``~/.cache/zoo/checkpoints``), its SHA-256 checked against the manifest or
  recorded (:func:`check_sha256` for files fetched by hand).
* :mod:`zoo.hub.convert` -- :func:`convert` through timm's pretrained path (the family's ``checkpoint_filter_fn``),
  :func:`load_for_publish`, :func:`verify_export`.
* :mod:`zoo.hub.card` -- :func:`model_card` from the template file ``zoo/hub/model_card.md``.
* :mod:`zoo.hub.export` -- :func:`export` (timm's Hub layout) / :func:`push` (``timm.models.push_to_hf_hub``), and the
  publishing rules (:func:`publish_target`, :func:`mark_published`).
* :mod:`zoo.hub.release` -- :func:`release`: download -> record -> convert -> verify -> push -> mark published.

Loading published weights needs nothing from this package: ``import zoo`` then
``timm.create_model('zoo_<arch>.<tag>', pretrained=True)`` (manifest entries with ``published: true``),
``timm.create_model('hf-hub:<org>/<arch>.<tag>', pretrained=True)`` or ``timm.create_model('local-dir:<dir>', ...)``.
"""
from ..checkpoint import (CheckpointError, ChecksumError, CorruptCheckpointError, UnsafeCheckpointError,
                          load as safe_load, sha256_file, state_dict_from as checkpoint_state_dict)
from .card import model_card
from .convert import ZOO_CONFIG_KEY, ExportMismatchError, convert, load_for_publish, verify_export
from .download import (CACHE_ENV, SHA_RECORDS, Download, ManualDownloadError, cache_dir, check_sha256, download,
                       downloadable, fetch, record_sha256_locally)
from .export import (HubError, PublishTarget, check_repo_id, export, mark_published, publish_cfg, publish_target, push,
                     require_online)
from .release import Release, release

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'CorruptCheckpointError', 'ChecksumError', 'ManualDownloadError',
    'HubError', 'ExportMismatchError', 'CACHE_ENV', 'SHA_RECORDS', 'ZOO_CONFIG_KEY',
    'cache_dir', 'sha256_file', 'safe_load', 'checkpoint_state_dict', 'download', 'fetch', 'record_sha256_locally',
    'check_sha256', 'downloadable', 'convert', 'load_for_publish', 'verify_export', 'model_card', 'export', 'push',
    'check_repo_id', 'publish_target', 'PublishTarget', 'publish_cfg', 'require_online', 'mark_published',
    'Download', 'Release', 'release',
]
