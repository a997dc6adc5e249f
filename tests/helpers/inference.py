"""A tiny trained checkpoint and image files, for the tests of predict, export and evaluation pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD
from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import resume_checkpoint_path
from tests.helpers.configs import CHEAP, compose_cfg


def train_tiny(tmp: Path) -> Path:
    """``last.ckpt`` of ``model=tiny data=synthetic`` trained for one epoch under ``tmp``."""
    cfg = compose_cfg("train", tmp, ["data=synthetic", "model=tiny", *CHEAP, "trainer.max_epochs=1", "validate_best=false"])
    _, objects = train(cfg)
    return Path(resume_checkpoint_path(objects["trainer"].checkpoint_callbacks))


def write_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Path:
    """A random image of ``size`` (H, W) in PIL ``mode`` (RGB, L, RGBA, ...)."""
    rng = np.random.default_rng(seed)
    channels = {"L": None, "RGB": 3, "RGBA": 4}[mode]
    shape = size if channels is None else (*size, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def network_input(path: Path, scale: float | None = None) -> torch.Tensor:
    """The file as the network sees it in prediction: RGB, resized by ``scale`` (antialiased), ImageNet-normalised, ``(1, 3, H, W)``."""
    from torchvision.transforms.v2 import functional as F

    image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
    if scale is not None:
        image = F.resize(image, [round(image.shape[1] * scale), round(image.shape[2] * scale)], antialias=True)
    image = image.float() / 255
    return ((image - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1))[None]
