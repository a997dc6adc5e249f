"""Evaluate a checkpoint: python scripts/eval.py ckpt_path=PATH [split=val|test|train]."""

import hydra
from omegaconf import DictConfig

from tconvseg.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = evaluate(cfg)
    return metrics.get(f"{cfg.split}/mIoU")


if __name__ == "__main__":
    main()
