"""Export: python scripts/export.py ckpt_path=PATH format=onnx|torchscript [output=FILE] (same as tconvseg-export)."""
from tconvseg.tasks.export import main

if __name__ == "__main__":
    main()
