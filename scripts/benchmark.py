"""Benchmark table (our models, torchvision peers, training runs): python scripts/benchmark.py --help."""
from tconvseg.tasks.benchmark import main

if __name__ == "__main__":
    main()
