"""Train: python scripts/train.py [overrides], e.g. model=fcn8s_resnet18 data.batch_size=8 (same as tconvseg-train)."""
from tconvseg.tasks.train import main

if __name__ == "__main__":
    main()
