"""Evaluate a checkpoint: python scripts/eval.py ckpt_path=PATH [split=val|test|train] (same as tconvseg-eval)."""
from tconvseg.tasks.evaluate import main

if __name__ == "__main__":
    main()
