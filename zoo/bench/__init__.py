"""Cost measurement for zoo and timm models, the same way for every model (used by ``tools/benchmark.py``).

One concern per module: :mod:`.metrics` (params, GMACs, latency, throughput, train step, peak memory, each in a
fresh process), :mod:`.machine` (matmul peak, alternating-round timing, per-op profile), :mod:`.references` (implementation vs reference:
bra, contmix, train_loop), :mod:`.pair` (zoo model vs the official implementation from a user's checkout) and
:mod:`.plots` (cost-vs-resolution PNGs). The names below are the package's interface.
"""
from .machine import (add_peak_fraction, alternating_times, matmul_peak, matmul_peak_in_subprocess,
                      peak_fraction_alternating, profile, speedup_alternating)
from .metrics import (DTYPES, _rss_mb, _run_case_subprocess, _sync, add_ratios, build, count_gmacs, count_params,
                      environment, is_official, markdown_table, measure, measure_in_subprocess, measure_throughput_group,
                      measure_throughput_group_in_subprocess, time_fn)
from .pair import PAIR_COLUMNS, build_official, compare_pairs, measure_pair, official_label, parse_call, parse_pair
from .plots import family_groups, family_of, plot_families, plot_scaling
from .references import (REFERENCE_COLUMNS, REFERENCE_ROUNDS, REFERENCES, _bra_reference, _na2d_ops, _reference_case,
                         _train_loop_case, compare_reference, compare_train_loop)

__all__ = [
    'DTYPES', 'count_params', 'count_gmacs', 'time_fn', 'build', 'measure', 'measure_in_subprocess', 'add_ratios',
    'environment', 'markdown_table', 'measure_throughput_group', 'measure_throughput_group_in_subprocess',
    'matmul_peak', 'matmul_peak_in_subprocess', 'add_peak_fraction', 'profile', 'alternating_times',
    'peak_fraction_alternating', 'speedup_alternating',
    'REFERENCE_COLUMNS', 'REFERENCES', 'REFERENCE_ROUNDS', 'compare_reference', 'compare_train_loop',
    'PAIR_COLUMNS', 'measure_pair', 'compare_pairs', 'parse_pair', 'parse_call', 'build_official', 'official_label',
    'is_official',
    'family_of', 'family_groups', 'plot_scaling', 'plot_families',
]
