"""Augmentation: joint image + mask transforms (torchvision v2), on-device batch augmentation, class mix and class-aware crops."""
