import torch

from tconvseg.data import SyntheticShapesDataset, synthetic_split


def test_contract_and_determinism():
    ds = SyntheticShapesDataset(8, size=(20, 30), num_classes=5, seed=3)
    image, mask = ds[2]
    assert image.shape == (3, 20, 30) and image.dtype == torch.float32
    assert mask.shape == (20, 30) and mask.dtype == torch.int64
    again = SyntheticShapesDataset(8, size=(20, 30), num_classes=5, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(ds[2], again[2]))
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(ds[2][0], again[2][0])
    assert not torch.equal(ds[2][1], SyntheticShapesDataset(8, size=(20, 30), num_classes=5, seed=4)[2][1])
    assert not torch.equal(ds[2][1], ds[3][1])


def test_labels_in_range_and_class_colour_is_learnable():
    ds = SyntheticShapesDataset(24, size=(32, 48), num_classes=4, seed=0)
    seen = set()
    for i in range(len(ds)):
        image, label = ds.load_pair(i)
        seen |= set(label.unique().tolist())
        for cls in range(1, 4):
            region = label == cls
            if region.sum() > 10:  # shape pixels sit near their class's palette colour
                mean = image[:, region].float().mean(dim=1)
                assert torch.allclose(mean, torch.tensor(ds.info.palette[cls], dtype=torch.float32), atol=12)
    assert seen == {0, 1, 2, 3}


def test_split_factory_gives_distinct_splits():
    train = synthetic_split("train", num_samples={"train": 4, "val": 2, "test": 2}, size=(16, 16))
    val = synthetic_split("val", num_samples={"train": 4, "val": 2, "test": 2}, size=(16, 16))
    assert (len(train), len(val)) == (4, 2)
    assert not torch.equal(train[0][0], val[0][0])
