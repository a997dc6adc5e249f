"""From a trained network to predictions: restoring a checkpoint (`restore`), test-time augmentation (`tta`),
tiles for large images (`tiling`), pictures of masks (`visualize`) and what a checkpoint was trained on
(`trained_items`)."""
