"""Pretrained weights: verified downloads, conversion to the zoo layout, model cards, Hub export and publishing.

One concern per module, the pipeline behind ``zoo-download`` / ``zoo-convert`` / ``zoo-push``: ``download`` (fetch
an official file into the cache, SHA-256 checked or recorded), ``convert`` (through the family's checkpoint filter),
``card`` (the model card) and ``export`` (timm's Hub layout and the push); :mod:`zoo.release` runs all of them for one
manifest entry. Loading published weights needs nothing from here: ``import zoo``, then
``timm.create_model(..., pretrained=True)``.
How the pieces fit is described in docs/weights_internals.md.
"""
from ..checkpoint import (CheckpointError, ChecksumError, CorruptCheckpointError, UnsafeCheckpointError,
                          load as safe_load, sha256_file, state_dict_from as checkpoint_state_dict)
from .card import model_card
from .convert import ZOO_CONFIG_KEY, ExportMismatchError, convert, load_for_publish, verify_export
from .download import (CACHE_ENV, SHA_RECORDS, Download, ManualDownloadError, cache_dir, check_sha256, download,
                       downloadable, fetch, record_sha256_locally)
from .export import (HubError, PublishTarget, check_repo_id, export, mark_published, publish_cfg, publish_target, push,
                     require_online)

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'CorruptCheckpointError', 'ChecksumError', 'ManualDownloadError',
    'HubError', 'ExportMismatchError', 'CACHE_ENV', 'SHA_RECORDS', 'ZOO_CONFIG_KEY',
    'cache_dir', 'sha256_file', 'safe_load', 'checkpoint_state_dict', 'download', 'fetch', 'record_sha256_locally',
    'check_sha256', 'downloadable', 'convert', 'load_for_publish', 'verify_export', 'model_card', 'export', 'push',
    'check_repo_id', 'publish_target', 'PublishTarget', 'publish_cfg', 'require_online', 'mark_published',
    'Download',
]
