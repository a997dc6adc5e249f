"""Predict: python scripts/predict.py ckpt_path=PATH input=FILE|FOLDER|GLOB|CLIP.mp4 [output_dir=DIR] (same as tconvseg-predict)."""
from tconvseg.tasks.predict import main

if __name__ == "__main__":
    main()
