"""A page to try a model: python scripts/demo.py ckpt_path=PATH|last [port=7860] (same as tconvseg-demo; needs the demo extra)."""

from tconvseg.tasks.demo import main

if __name__ == "__main__":
    main()
