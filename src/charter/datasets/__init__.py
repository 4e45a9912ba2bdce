"""Loaders for the public datasets Charter trains and measures on (never copied here)."""

from charter.datasets.locate import ORIGINS, DatasetNotFoundError, data_dir, dataset_path

__all__ = ["ORIGINS", "DatasetNotFoundError", "data_dir", "dataset_path"]
