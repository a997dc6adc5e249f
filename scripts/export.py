"""Export: python scripts/export.py ckpt_path=PATH format=onnx|torchscript [output=FILE] (same as tconvseg-export)."""
from tconvseg.export import main

if __name__ == "__main__":
    main()
