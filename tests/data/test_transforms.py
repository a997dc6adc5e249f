"""Properties of the joint transforms: no new label values, int64 masks, image/mask alignment."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tconvseg.data import Rescale, apply_transforms, eval_transforms, train_transforms

IGNORE = 11
fast = settings(max_examples=40, deadline=None)


def coded_pair(mask: torch.Tensor) -> torch.Tensor:
    """An image whose every channel encodes the label: value * 20 + 10 (never 0, the crop padding)."""
    return (mask * 20 + 10).to(torch.uint8).expand(3, *mask.shape).clone()


@st.composite
def masks(draw):
    h, w = draw(st.integers(4, 24)), draw(st.integers(4, 24))
    values = draw(st.lists(st.integers(0, 10), min_size=1, max_size=5, unique=True))
    seed = draw(st.integers(0, 2**16))
    idx = torch.randint(0, len(values), (h, w), generator=torch.Generator().manual_seed(seed))
    return torch.tensor(values, dtype=torch.uint8)[idx]


@fast
@given(
    mask=masks(),
    scale=st.sampled_from([None, 0.5, 1.5]),
    random_scale=st.sampled_from([None, (0.5, 2.0)]),
    crop=st.sampled_from([None, (8, 8), (30, 12)]),
    jitter=st.sampled_from([None, 0.3]),
    seed=st.integers(0, 1000),
)
def test_augmentation_adds_no_label_values(mask, scale, random_scale, crop, jitter, seed):
    torch.manual_seed(seed)
    tf = train_transforms(
        ignore_index=IGNORE, scale=scale, random_scale=random_scale, crop_size=crop, color_jitter=jitter
    )
    image, out = apply_transforms(tf, coded_pair(mask), mask)
    assert out.dtype == torch.int64 and image.dtype == torch.float32
    assert image.shape[-2:] == out.shape and image.shape[0] == 3
    if crop is not None:
        assert tuple(out.shape) == crop
    assert set(out.unique().tolist()) <= set(mask.unique().tolist()) | {IGNORE}


@fast
@given(mask=masks(), crop=st.sampled_from([None, (6, 6), (20, 30)]), seed=st.integers(0, 1000))
def test_flip_and_crop_keep_image_and_mask_aligned(mask, crop, seed):
    torch.manual_seed(seed)
    tf = train_transforms(ignore_index=IGNORE, crop_size=crop, hflip=0.5, mean=None, std=None)
    image, out = apply_transforms(tf, coded_pair(mask), mask)
    decoded = torch.round(image[0] * 255).long()
    labelled = out != IGNORE
    assert torch.equal(decoded[labelled], out[labelled] * 20 + 10)
    assert torch.all(decoded[~labelled] == 0)  # padding: 0 in the image exactly where the mask is void


def test_flip_really_flips_both():
    mask = torch.arange(6, dtype=torch.uint8).repeat(4, 1)  # columns 0..5
    tf = train_transforms(ignore_index=IGNORE, hflip=1.0, mean=None, std=None)
    image, out = apply_transforms(tf, coded_pair(mask), mask)
    assert out[0].tolist() == [5, 4, 3, 2, 1, 0]
    assert torch.equal(torch.round(image[0] * 255).long(), out * 20 + 10)


def test_base_scale_and_masks_use_nearest():
    mask = torch.zeros(360, 480, dtype=torch.uint8)
    mask[:, 240:] = 7
    image, out = apply_transforms(train_transforms(ignore_index=IGNORE, scale=0.5, hflip=0), coded_pair(mask), mask)
    assert image.shape == (3, 180, 240) and out.shape == (180, 240)
    assert set(out.unique().tolist()) == {0, 7} and out[:, 119].eq(0).all() and out[:, 120].eq(7).all()


def test_eval_resize_mask_false_keeps_label_resolution():
    mask = torch.randint(0, 11, (36, 48), dtype=torch.uint8)
    image, out = apply_transforms(eval_transforms(scale=0.5, resize_mask=False), coded_pair(mask), mask)
    assert image.shape == (3, 18, 24) and torch.equal(out, mask.long())
    image, out = apply_transforms(eval_transforms(size=(9, 12)), coded_pair(mask), mask)
    assert image.shape == (3, 9, 12) and out.shape == (9, 12)


def test_eval_is_deterministic_and_normalised():
    mask = torch.zeros(8, 8, dtype=torch.uint8)
    image = torch.tensor([124, 116, 104], dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8).clone()  # ImageNet mean
    a, _ = apply_transforms(eval_transforms(), image, mask)
    b, _ = apply_transforms(eval_transforms(), image, mask)
    assert torch.equal(a, b) and a.abs().max() < 0.01


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crop_size": (0, 4)}, "crop_size=\\(0, 4\\)"),
        ({"hflip": 2}, "hflip=2"),
        ({"scale": 0.5, "size": (4, 4)}, "exclusive"),
        ({"scale": -1}, "scale=-1"),
        ({"random_scale": (2.0, 1.0)}, "scale="),
        ({"color_jitter": (0.1, 0.2)}, "color_jitter="),
        ({"photometric": 1.5}, "photometric=1.5 is invalid; expected a probability"),
        ({"grayscale": -0.1}, "grayscale=-0.1 is invalid"),
        ({"noise": -0.1}, "noise=-0.1 is invalid; expected a standard deviation"),
        ({"noise": "a"}, "noise='a' is invalid"),
    ],
)
def test_bad_options_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_transforms(ignore_index=IGNORE, **kwargs)


def test_rescale_needs_exactly_one_of_scale_and_size():
    with pytest.raises(ValueError, match="exactly one"):
        Rescale()


def test_tiny_rescale_stays_at_least_two_pixels():
    # torch's uint8 antialiased resize asserts on 1x1 outputs (found by the property test above)
    mask = torch.zeros(4, 4, dtype=torch.uint8)
    image, out = apply_transforms(Rescale(scale=0.25), coded_pair(mask), mask)
    assert image.shape == (3, 2, 2) and out.shape == (2, 2)
    with pytest.raises(ValueError, match="size=\\(1, 1\\)"):
        Rescale(size=(1, 1))


def _photometric_change(**options) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mask = torch.randint(0, 11, (16, 20), dtype=torch.uint8)
    image = torch.randint(30, 220, (3, 16, 20), dtype=torch.uint8)
    plain = train_transforms(ignore_index=IGNORE, hflip=0.0, mean=None, std=None)
    changed = train_transforms(ignore_index=IGNORE, hflip=0.0, mean=None, std=None, **options)
    (a, _), (b, out) = apply_transforms(plain, image, mask), apply_transforms(changed, image, mask)
    return a, b, torch.equal(out, mask.long())


@pytest.mark.parametrize(
    "options", [{"photometric": 1.0}, {"grayscale": 1.0}, {"noise": 0.05}, {"photometric": 1.0, "grayscale": 1.0, "noise": 0.05}]
)
def test_photometric_options_change_pixels_but_never_the_mask(options):
    plain, changed, mask_kept = _photometric_change(**options)
    assert mask_kept and changed.shape == plain.shape
    assert (changed - plain).abs().mean() > 0.005
    assert 0.0 <= changed.min() and changed.max() <= 1.0  # noise is clipped to the pixel range


def test_grayscale_makes_the_channels_equal_and_noise_has_its_std():
    _, gray, _ = _photometric_change(grayscale=1.0)
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])
    plain, noisy, _ = _photometric_change(noise=0.05)
    assert abs(float((noisy - plain).std()) - 0.05) < 0.01  # pixels far from 0 and 1: clipping is rare


def test_photometric_off_by_default_and_at_zero():
    plain, changed, _ = _photometric_change(photometric=0.0, grayscale=0.0, noise=0.0)
    assert torch.equal(plain, changed)
