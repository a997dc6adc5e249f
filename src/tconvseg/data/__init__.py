"""Data layer: datasets, joint transforms, class statistics and the Lightning DataModule.

Every dataset yields ``(image float32 (3, H, W), mask int64 (H, W))``; mask values are class indices
``0..num_classes-1`` or the dataset's ``ignore_index``.
"""

from .base import SegmentationDataset, apply_transforms, collate_pairs
from .camvid import CamVidDataset, camvid_index
from .datamodule import SegmentationDataModule
from .download import DEFAULT_URL, camvid_present, download_camvid
from .errors import DATA_DIR_ENV, DatasetError, DatasetNotFoundError
from .extract import extract_camvid
from .folder import FolderDataset
from .info import CAMVID, PETS, VOC, DatasetInfo, dataset_info, synthetic_info
from .pets import PetsDataset
from .stats import class_pixel_counts, median_frequency_weights
from .synthetic import SyntheticShapesDataset, synthetic_split
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Rescale, eval_transforms, train_transforms
from .voc import VOCDataset

__all__ = [
    "CAMVID",
    "DATA_DIR_ENV",
    "DEFAULT_URL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PETS",
    "VOC",
    "CamVidDataset",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "FolderDataset",
    "PetsDataset",
    "Rescale",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SyntheticShapesDataset",
    "VOCDataset",
    "apply_transforms",
    "camvid_index",
    "camvid_present",
    "class_pixel_counts",
    "collate_pairs",
    "dataset_info",
    "download_camvid",
    "eval_transforms",
    "extract_camvid",
    "median_frequency_weights",
    "synthetic_info",
    "synthetic_split",
    "train_transforms",
]
