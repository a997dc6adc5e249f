"""BatchAugment (data.augment_on=device): the same augmentation as the per-item pipeline, provably."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from tconvseg.data import CAMVID, Rescale, apply_transforms, train_transforms
from tconvseg.data.augment.batch_augment import BatchAugment
from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD

IGNORE = CAMVID.ignore_index
PALETTE = torch.tensor(CAMVID.palette, dtype=torch.float32) / 255.0  # (11, 3)
RECIPE = {"scale": 0.5, "random_scale": [0.75, 1.5], "crop_size": [40, 56], "hflip": 0.5}


def coded_batch(n: int = 6, size: tuple[int, int] = (72, 96), block: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of ``block``-sized squares (some void) and images whose colour is the label's palette colour."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    grid = torch.randint(0, CAMVID.num_classes + 1, (n, -(-h // block), -(-w // block)), generator=g)
    masks = grid.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w]
    masks = torch.where(masks == CAMVID.num_classes, torch.full_like(masks, IGNORE), masks).to(torch.uint8)
    colours = torch.cat([PALETTE, torch.zeros(1, 3)])[torch.where(masks == IGNORE, CAMVID.num_classes, masks).long()]
    images = (colours.permute(0, 3, 1, 2) * 255).round().to(torch.uint8)
    return images, masks


def decode(images: torch.Tensor) -> torch.Tensor:
    """The palette class nearest to each pixel of (N, 3, h, w) [0, 1] images: (N, h, w)."""
    distance = ((images.permute(0, 2, 3, 1).unsqueeze(-2) - PALETTE) ** 2).sum(-1)
    return distance.argmin(-1)


def interior(masks: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood holds one label only (boundaries and their neighbours excluded)."""
    m = masks.float().unsqueeze(1)
    high = F.max_pool2d(m, 3, 1, 1)
    low = -F.max_pool2d(-m, 3, 1, 1)
    return (high == low).squeeze(1)


def test_colours_still_agree_with_their_labels_after_augmentation():
    torch.manual_seed(0)
    images, masks = coded_batch(n=16)
    out, labels = BatchAugment(ignore_index=IGNORE, mean=None, std=None, **RECIPE)(images, masks)
    assert out.shape == (16, 3, 40, 56) and labels.shape == (16, 40, 56) and labels.dtype == torch.int64
    keep = interior(labels) & (labels != IGNORE)
    agree = (decode(out) == labels)[keep].float().mean()
    assert keep.sum() > 5000 and agree >= 0.99


def test_masks_hold_only_class_ids_and_void():
    torch.manual_seed(1)
    images, masks = coded_batch()
    _, labels = BatchAugment(ignore_index=IGNORE, **RECIPE)(images, masks)
    assert set(labels.unique().tolist()) <= {*range(CAMVID.num_classes), IGNORE}


def test_crop_padding_is_void_and_black():
    torch.manual_seed(2)
    images = torch.full((4, 3, 72, 96), 200, dtype=torch.uint8)
    masks = torch.zeros(4, 72, 96, dtype=torch.uint8)  # class 0 everywhere: padding must not read as it
    out, labels = BatchAugment(ignore_index=IGNORE, scale=0.25, crop_size=[40, 56], hflip=0.0, mean=None, std=None)(images, masks)
    # the 18x24 image sits somewhere inside a 40x56 crop: the rest is void and black
    assert (labels == 0).sum(dim=(1, 2)).tolist() == [18 * 24] * 4
    inside = interior(labels)  # bilinear sampling blends the image's edge pixels with the padding
    assert torch.all(out.permute(1, 0, 2, 3)[:, (labels == IGNORE) & inside] == 0)
    assert torch.allclose(out.permute(1, 0, 2, 3)[:, (labels == 0) & inside], torch.tensor(200 / 255))


def test_parameters_differ_across_the_batch_and_a_seed_repeats_them():
    images, masks = coded_batch(n=1)
    images, masks = images.expand(8, -1, -1, -1), masks.expand(8, -1, -1)
    augment = BatchAugment(ignore_index=IGNORE, **RECIPE)
    torch.manual_seed(3)
    first = augment(images, masks)
    distinct = {tuple(m.flatten().tolist()) for m in first[1]}
    assert len(distinct) == 8
    torch.manual_seed(3)
    again = augment(images, masks)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_without_randomness_it_is_the_per_item_resize_and_normalisation():
    images, masks = coded_batch(n=3, block=6)
    images = images + torch.randint(0, 40, images.shape, dtype=torch.uint8)  # texture, so resampling shows
    out, labels = BatchAugment(ignore_index=IGNORE, scale=0.5, hflip=0.0)(images, masks)
    per_item = train_transforms(ignore_index=IGNORE, scale=0.5, hflip=0.0)
    for i in range(3):
        ref_image, ref_mask = apply_transforms(per_item, images[i], masks[i])
        assert out[i].shape == ref_image.shape
        assert (out[i] - ref_image).abs().max() < 0.05  # uint8 vs float antialiased resize, then / std
        assert (labels[i] == ref_mask).float().mean() > 0.97  # nearest neighbour, sampled at other phases


def _per_item_draws(n: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scaled height, crop top and flip of ``n`` draws of the per-item pipeline's own transforms."""
    rescale = Rescale(scale=(0.5 * 0.75, 0.5 * 1.5))
    crop = v2.RandomCrop([40, 56], pad_if_needed=True)
    scaled, tops, flips = [], [], []
    probe = torch.zeros(1, height, width)
    for _ in range(n):
        h, w = rescale.make_params([probe])["size"]
        params = crop.make_params([torch.zeros(1, h, w)])
        pad_top = params["padding"][1]
        scaled.append(h)
        tops.append(params["top"] - pad_top)
        flips.append(float(torch.rand(()) < 0.5))
    return torch.tensor(scaled, dtype=torch.float32), torch.tensor(tops, dtype=torch.float32), torch.tensor(flips)


def test_scale_crop_and_flip_follow_the_per_item_distributions():
    torch.manual_seed(4)
    n, height, width = 4000, 72, 96
    augment = BatchAugment(ignore_index=IGNORE, **RECIPE)
    theta = augment._draw_theta(n, height, width, 40, 56, torch.device("cpu"))
    scaled = (40 / theta[:, 1, 1]).round()
    top = ((theta[:, 1, 2] + 1) * scaled - 40) / 2
    flips = (theta[:, 0, 0] < 0).float()
    ref_scaled, ref_top, ref_flips = _per_item_draws(n, height, width)
    assert scaled.min() == ref_scaled.min() and scaled.max() == ref_scaled.max()
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(torch.quantile(scaled, q) - torch.quantile(ref_scaled, q)) <= 1.0
        assert abs(torch.quantile(top, q) - torch.quantile(ref_top, q)) <= 1.5
    assert abs(flips.mean() - ref_flips.mean()) < 0.05 and abs(flips.mean() - 0.5) < 0.04


def test_colour_jitter_factors_stay_in_range_and_vary_per_sample():
    torch.manual_seed(5)
    images = torch.full((200, 3, 8, 8), 100, dtype=torch.uint8)
    masks = torch.zeros(200, 8, 8, dtype=torch.uint8)
    out, _ = BatchAugment(ignore_index=IGNORE, hflip=0.0, color_jitter=[0.4, 0.0, 0.0], mean=None, std=None)(images, masks)
    factors = out.mean(dim=(1, 2, 3)) / (100 / 255)
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4
    assert factors.std() > 0.15  # uniform on [0.6, 1.4]: std 0.23
    reference = v2.ColorJitter(brightness=0.4)
    ref = torch.stack([reference(images[i]).float().mean() / 100 for i in range(200)])
    assert abs(float(ref.mean() - factors.mean())) < 0.05 and abs(float(ref.std() - factors.std())) < 0.05


def test_normalisation_is_imagenets():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out, _ = BatchAugment(ignore_index=IGNORE, hflip=0.0)(images, torch.zeros(2, 4, 4, dtype=torch.uint8))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[0, :, 0, 0], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"random_scale": [0.75, 1.5]}, r"random_scale=\[0.75, 1.5\] with data.augment_on=device needs data.train_transforms.crop_size"),
        ({"color_jitter": [0.2, 0.2, 0.2, 0.1]}, r"color_jitter=.*hue jitter runs only with data.augment_on=loader"),
        ({"hflip": 1.5}, r"hflip=1.5 is invalid"),
        ({"scale": 0}, r"scale=0 is invalid"),
        ({"noise": -1}, r"noise=-1 is invalid"),
        ({"random_scale": [2.0, 1.0], "crop_size": 8}, r"random_scale=\[2.0, 1.0\] is invalid"),
    ],
)
def test_bad_options_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        BatchAugment(ignore_index=IGNORE, **options)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"got images \(2, 1, 4, 4\).*expected \(N, 3, H, W\)"):
        BatchAugment(ignore_index=IGNORE)(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
