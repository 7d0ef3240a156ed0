"""Datasets: loaders for the formats users have, a synthetic Dawid-Skene generator, and the
small embedded demo dataset."""

from wsagg.datasets._synthetic import SyntheticDawidSkene, make_dawid_skene

__all__ = ["SyntheticDawidSkene", "make_dawid_skene"]
