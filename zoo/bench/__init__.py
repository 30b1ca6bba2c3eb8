"""Cost measurement for zoo and timm models, the same way for every model (used by ``zoo-benchmark``).

One concern per module, each importing only the ones below it: :mod:`.metrics` (params, GMACs, latency, throughput,
train step, peak memory, each in a fresh process), :mod:`.machine` (matmul peak, alternating-round timing, per-op
profile), :mod:`.pair` (zoo model vs the official implementation from a user's checkout), :mod:`.references`
(implementation vs reference: bra, contmix, train_loop), :mod:`.plots` (cost-vs-resolution PNGs), all over
:mod:`.timing` (the low-level helpers). The names below are the package's interface.
"""
from .machine import (add_peak_fraction, alternating_times, matmul_peak, matmul_peak_in_subprocess,
                      peak_fraction_alternating, profile, speedup_alternating)
from .metrics import (MeasureOptions, add_ratios, count_gmacs, environment, markdown_table, measure,
                      measure_in_subprocess, measure_throughput_group, measure_throughput_group_in_subprocess)
from .pair import (PAIR_COLUMNS, build, build_official, compare_pairs, measure_pair, official_label, parse_call,
                   parse_pair)
from .plots import family_groups, family_of, plot_families, plot_scaling
from .references import (REFERENCE_COLUMNS, REFERENCE_ROUNDS, REFERENCES, compare_reference, compare_train_loop,
                         reference_case, train_loop_case)
from .timing import DTYPES, count_params, is_official, time_fn

__all__ = [
    'DTYPES', 'count_params', 'count_gmacs', 'time_fn', 'build', 'measure', 'MeasureOptions', 'measure_in_subprocess',
    'add_ratios', 'environment', 'markdown_table', 'measure_throughput_group', 'measure_throughput_group_in_subprocess',
    'matmul_peak', 'matmul_peak_in_subprocess', 'add_peak_fraction', 'profile', 'alternating_times',
    'peak_fraction_alternating', 'speedup_alternating',
    'REFERENCE_COLUMNS', 'REFERENCES', 'REFERENCE_ROUNDS', 'compare_reference', 'compare_train_loop',
    'reference_case', 'train_loop_case',
    'PAIR_COLUMNS', 'measure_pair', 'compare_pairs', 'parse_pair', 'parse_call', 'build_official', 'official_label',
    'is_official',
    'family_of', 'family_groups', 'plot_scaling', 'plot_families',
]
