"""data.train_transforms.class_uniform_crop: crops placed on a class drawn uniformly from those in the mask."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from tconvseg.data import apply_transforms, train_transforms
from tconvseg.data.augment.class_crop import ClassUniformCrop
from tests.data.test_datamodule import build, fake_data
from tests.data.test_transforms import coded_pair

IGNORE = 11
FILL = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE, "others": 0}


def one_pixel_mask(h: int, w: int, y: int, x: int, background: int = IGNORE, label: int = 7) -> torch.Tensor:
    mask = torch.full((h, w), background, dtype=torch.uint8)
    mask[y, x] = label
    return mask


def test_every_class_placed_crop_holds_the_drawn_class():
    # One labelled pixel in a void field: the only class, so every crop at p=1 must contain it.
    mask = one_pixel_mask(40, 60, 3, 55)
    crop = ClassUniformCrop((10, 12), p=1.0, ignore_index=IGNORE, fill=FILL)
    for seed in range(50):
        torch.manual_seed(seed)
        _, out = crop(tv_tensors.Image(coded_pair(mask)), tv_tensors.Mask(mask))
        assert out.shape == (10, 12) and (out == 7).sum() == 1


def test_the_pixel_lands_at_every_place_of_the_crop():
    # The corner is uniform over the places that contain the pixel, so the pixel visits every cell of the crop.
    mask = one_pixel_mask(12, 12, 6, 5)
    crop = ClassUniformCrop((3, 4), p=1.0, ignore_index=IGNORE, fill=FILL)
    seen = set()
    torch.manual_seed(0)
    for _ in range(400):
        _, out = crop(tv_tensors.Image(coded_pair(mask)), tv_tensors.Mask(mask))
        seen.add(tuple(int(i) for i in (out == 7).nonzero()[0]))
    assert seen == {(r, c) for r in range(3) for c in range(4)}


def test_a_plain_random_crop_misses_the_thin_class_that_the_placed_crop_finds():
    mask = one_pixel_mask(60, 80, 50, 3, background=0)  # a large class 0 and one pixel of class 7
    hits = {}
    for p in (0.0, 1.0):
        crop = ClassUniformCrop((12, 16), p=p, ignore_index=IGNORE, fill=FILL)
        torch.manual_seed(1)
        hits[p] = sum(int((crop(tv_tensors.Image(coded_pair(mask)), tv_tensors.Mask(mask))[1] == 7).any()) for _ in range(200))
    assert hits[0.0] < 20  # about 200 * (12 * 16) / (60 * 80) = 8
    assert 70 < hits[1.0] < 140  # class 7 is drawn half of the time (two classes), and then always inside


def test_p_zero_is_torchvisions_random_crop_draw_for_draw():
    mask = torch.randint(0, 11, (30, 40), generator=torch.Generator().manual_seed(0), dtype=torch.int64).to(torch.uint8)
    ours = ClassUniformCrop((17, 23), p=0.0, ignore_index=IGNORE, fill=FILL)
    theirs = v2.RandomCrop([17, 23], pad_if_needed=True, fill=FILL)
    for seed in range(5):
        torch.manual_seed(seed)
        a = ours(tv_tensors.Image(coded_pair(mask)), tv_tensors.Mask(mask))
        torch.manual_seed(seed)
        b = theirs(tv_tensors.Image(coded_pair(mask)), tv_tensors.Mask(mask))
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("size", [(5, 7), (9, 3)])
def test_images_smaller_than_the_crop_are_padded_with_void_and_keep_the_class(size):
    mask = one_pixel_mask(*size, 1, 2)
    tf = train_transforms(ignore_index=IGNORE, crop_size=(8, 10), class_uniform_crop=1.0, hflip=0.0, mean=None, std=None)
    for seed in range(20):
        torch.manual_seed(seed)
        image, out = apply_transforms(tf, coded_pair(mask), mask)
        assert tuple(out.shape) == (8, 10) and (out == 7).sum() == 1
        decoded = torch.round(image[0] * 255).long()
        assert torch.equal(decoded[out == 7], torch.tensor([7 * 20 + 10]))  # image and mask stay aligned
        assert torch.all(decoded[out == IGNORE][decoded[out == IGNORE] != IGNORE * 20 + 10] == 0)


def test_a_void_only_mask_falls_back_to_a_random_crop():
    mask = torch.full((20, 20), IGNORE, dtype=torch.uint8)
    torch.manual_seed(0)
    _, out = ClassUniformCrop((5, 5), p=1.0, ignore_index=IGNORE, fill=FILL)(tv_tensors.Image(coded_pair(mask)), tv_tensors.Mask(mask))
    assert out.shape == (5, 5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop_size": (8, 8), "class_uniform_crop": 1.5}, r"class_uniform_crop=1.5 is invalid; expected the probability, in \[0, 1\]"),
        ({"crop_size": (8, 8), "class_uniform_crop": True}, r"class_uniform_crop=True is invalid"),
        ({"class_uniform_crop": 0.5}, r"class_uniform_crop=0.5 needs crop_size .*data.train_transforms.crop_size"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        train_transforms(ignore_index=IGNORE, **options)


def test_an_image_without_its_mask_is_refused():
    crop = ClassUniformCrop((4, 4), p=1.0, ignore_index=IGNORE)
    with pytest.raises(ValueError, match="class_uniform_crop needs the mask"):
        crop(tv_tensors.Image(torch.zeros(3, 10, 10, dtype=torch.uint8)))


def test_the_camvid_config_key_reaches_the_training_pipeline(tmp_path):
    fake_data("camvid", tmp_path)
    dm = build("camvid", tmp_path, **{"train_transforms.crop_size": [16, 20], "train_transforms.class_uniform_crop": 0.5})
    dm.setup("fit")
    steps = dm.dataset("train").transforms.transforms
    placed = [t for t in steps if isinstance(t, ClassUniformCrop)]
    assert len(placed) == 1 and placed[0].p == 0.5 and placed[0].ignore_index == dm.ignore_index
    image, mask = dm.dataset("train")[0]
    assert image.shape[-2:] == mask.shape == (16, 20)
