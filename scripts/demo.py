"""Shape-restoration demo: python scripts/demo.py [--encoders resnet18 ...] [--sizes 97x131 ...]."""

from tconvseg.tasks.demo import main

if __name__ == "__main__":
    main()
