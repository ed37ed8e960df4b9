"""Evaluation room: cell-embedding benchmarks (perturbation screen, cell types) and the ablation runner.

Imports txfm, precompute and data; none of them imports this package.
CLI: ``python -m evaluation {perturbation,celltype,ablate} --help``.
"""
