"""Shape restoration at odd sizes: python scripts/shapes.py [--encoders resnet18 ...] [--sizes 97x131 ...] (same as tconvseg-shapes)."""

from tconvseg.tasks.shapes import main

if __name__ == "__main__":
    main()
