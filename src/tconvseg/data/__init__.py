"""Data layer: datasets (`datasets`, `fetch`), splits by drive (`splits`), augmentation (`augment`) and the Lightning DataModule.

Every dataset yields ``(image float32 (3, H, W), mask int64 (H, W))``; mask values are class indices
``0..num_classes-1`` or the dataset's ``ignore_index``.
"""

from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD, Rescale, eval_transforms, train_transforms
from tconvseg.data.datamodule import SegmentationDataModule
from tconvseg.data.datasets.base import SegmentationDataset, apply_transforms, collate_pairs
from tconvseg.data.datasets.camvid import CamVidDataset, camvid_index
from tconvseg.data.datasets.folder import FolderDataset
from tconvseg.data.datasets.info import CAMVID, PETS, VOC, DatasetInfo, dataset_info, synthetic_info
from tconvseg.data.datasets.pets import PetsDataset
from tconvseg.data.datasets.stats import class_pixel_counts, median_frequency_weights
from tconvseg.data.datasets.synthetic import SyntheticShapesDataset, synthetic_split
from tconvseg.data.datasets.voc import VOCDataset
from tconvseg.data.errors import DATA_DIR_ENV, DatasetError, DatasetNotFoundError
from tconvseg.data.fetch.download import DEFAULT_URL, camvid_present, download_camvid
from tconvseg.data.fetch.extract import extract_camvid

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
