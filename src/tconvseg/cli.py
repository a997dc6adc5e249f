"""Console scripts ``tconvseg-train`` and ``tconvseg-eval``: thin Hydra wrappers.

``scripts/train.py`` and ``scripts/eval.py`` call the same functions.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from tconvseg.builders import config_dir


def _run(config_name: str, task: str) -> None:
    def main(cfg: DictConfig) -> float | None:
        if task == "train":
            from tconvseg.train import train

            metrics, _ = train(cfg)
            return metrics.get("best/val/mIoU", metrics.get("val/mIoU"))
        from tconvseg.evaluate import evaluate

        metrics, _ = evaluate(cfg)
        return metrics.get(f"{cfg.split}/mIoU")

    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(main)()


def train_main() -> None:
    """Entry point of ``tconvseg-train`` (Hydra overrides on the command line)."""
    _run("train", "train")


def eval_main() -> None:
    """Entry point of ``tconvseg-eval`` (needs ``ckpt_path=...``)."""
    _run("eval", "eval")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
