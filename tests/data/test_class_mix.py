"""ClassMix of a training batch (`tconvseg.data.augment.class_mix`, ``data.class_mix``)."""

from __future__ import annotations

import pytest
import torch

from tconvseg.data import SegmentationDataModule, synthetic_info
from tconvseg.data.augment.class_mix import check_class_mix, class_mix
from tconvseg.data.datasets.synthetic import SyntheticShapesDataset

VOID = 11


def _batch(n: int = 6, classes: int = 11, size: tuple[int, int] = (12, 16), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Items whose pixel values encode (item, row, column), masks with several classes and some void."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, classes, (n, *size), generator=g)
    masks[:, 0, :] = VOID
    images = torch.arange(n * 3 * size[0] * size[1], dtype=torch.float32).view(n, 3, *size)
    return images, masks


def _source_items(images: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """For every pixel of ``mixed`` (N, 3, H, W) the index of the item of ``images`` it was copied from."""
    n, _, h, w = images.shape
    per_item = images[0].numel()
    return ((mixed[:, 0] - images[0, 0]) // per_item).long().view(n, h, w)


def test_mixed_pixels_come_from_one_partner_with_their_labels() -> None:
    images, masks = _batch()
    out_images, out_masks = class_mix(images, masks, 1.0, num_classes=11, generator=torch.Generator().manual_seed(1))
    source = _source_items(images, out_images)
    for i in range(images.shape[0]):
        donors = set(source[i].unique().tolist()) - {i}
        assert len(donors) == 1, "every pasted pixel of an item comes from one partner"
        j = donors.pop()
        pasted = source[i] == j
        assert torch.equal(out_masks[i][pasted], masks[j][pasted]), "pasted pixels keep the partner's labels"
        assert torch.equal(out_masks[i][~pasted], masks[i][~pasted]), "the rest keeps the item's labels"
        assert torch.equal(out_images[i][:, pasted], images[j][:, pasted])
        # the pasted region is exactly the partner's pixels of ceil(k/2) of its k classes, never its void
        present = set(masks[j][masks[j] < 11].unique().tolist())
        chosen = set(masks[j][pasted].unique().tolist())
        assert VOID not in chosen and chosen <= present
        assert len(chosen) == (len(present) + 1) // 2
        assert torch.equal(pasted, torch.isin(masks[j], torch.tensor(sorted(chosen)))), "all pixels of a chosen class move"


def test_probability_zero_and_single_items_leave_the_batch_alone() -> None:
    images, masks = _batch()
    assert class_mix(images, masks, 0.0, num_classes=11) == (images, masks)
    one = class_mix(images[:1], masks[:1], 1.0, num_classes=11)
    assert torch.equal(one[0], images[:1]) and torch.equal(one[1], masks[:1])


def test_probability_sets_the_share_of_mixed_items() -> None:
    images, masks = _batch(n=8)
    g = torch.Generator().manual_seed(3)
    mixed = 0
    for _ in range(200):
        out_images, _ = class_mix(images, masks, 0.25, num_classes=11, generator=g)
        mixed += int((out_images != images).flatten(1).any(dim=1).sum())
    assert 0.20 < mixed / (200 * 8) < 0.30


def test_seeded_generator_repeats_and_inputs_are_not_modified() -> None:
    images, masks = _batch()
    before = images.clone(), masks.clone()
    first = class_mix(images, masks, 0.5, num_classes=11, generator=torch.Generator().manual_seed(7))
    second = class_mix(images, masks, 0.5, num_classes=11, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(images, before[0]) and torch.equal(masks, before[1])


def test_void_that_is_255_or_negative_is_never_pasted() -> None:
    images, masks = _batch(n=2)
    masks[1] = 255
    masks[1, :, :4] = 3
    masks[1, :, 4:6] = -1
    out_images, out_masks = class_mix(images, masks, 1.0, num_classes=11, generator=torch.Generator().manual_seed(0))
    pasted = _source_items(images, out_images)[0] == 1
    assert torch.equal(pasted, masks[1] == 3), "only the partner's one real class moves"


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", True, [0.5]])
def test_bad_probability_is_named(value: object) -> None:
    with pytest.raises(ValueError, match=r"data\.class_mix=.*expected the probability in \[0, 1\]"):
        check_class_mix(value)  # type: ignore[arg-type]


def test_mismatched_shapes_are_refused() -> None:
    images, masks = _batch()
    with pytest.raises(ValueError, match="one size"):
        class_mix(images, masks[:, :6], 1.0, num_classes=11)


def test_datamodule_mixes_training_batches_only() -> None:
    info = synthetic_info(4)
    dm = SegmentationDataModule(
        dataset=lambda split, transforms: SyntheticShapesDataset(8, size=(24, 32), seed=0, transforms=transforms),
        info=info,
        train_transforms={"hflip": 0.0},
        batch_size=8,
        class_mix=1.0,
    )
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = type("T", (), {"training": False})()
    assert dm.on_after_batch_transfer(batch, 0) is batch, "no mixing outside training"
    dm.trainer = type("T", (), {"training": True})()
    torch.manual_seed(0)
    images, masks = dm.on_after_batch_transfer(batch, 0)
    assert images.shape == batch[0].shape and masks.shape == batch[1].shape
    assert not torch.equal(masks, batch[1])
    with pytest.raises(ValueError, match=r"data\.class_mix=2"):
        SegmentationDataModule(dataset=dm._dataset_factory, info=info, class_mix=2)
