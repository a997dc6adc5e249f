"""Train a segmentation model: python scripts/train.py [overrides], e.g.

    python scripts/train.py model=fcn8s_resnet18 data.batch_size=8 trainer.max_epochs=30
"""

import hydra
from omegaconf import DictConfig

from tconvseg.train import train


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    return metrics.get("best/val/mIoU", metrics.get("val/mIoU"))  # returned for Hydra sweepers


if __name__ == "__main__":
    main()
