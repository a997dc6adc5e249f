"""Static description of each dataset family: class names, colours and the ignored label.

This module is the single place where class names and palettes live; datasets, metrics and
visualisations all read them from a `DatasetInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetInfo:
    """Names and colours of the classes of one dataset.

    Attributes:
        name: short lower-case identifier (``"camvid"``, ``"voc"``, ...).
        class_names: one name per class; class ``i`` has label value ``i`` in every mask.
        ignore_index: label value excluded from loss and metrics (void / boundary pixels);
            never a valid class index.
        palette: one RGB colour per class, same length as ``class_names``.
        ignore_color: RGB colour used to draw ``ignore_index`` pixels.
        selection_groups: the groups (drives) that levers are chosen on when held out (``data.holdout``): a sweep
            under a holdout may optimise only these (`tconvseg.training.selection`).
        confirmation_groups: the groups that confirm a choice and are never chosen on: a run that holds them out
            writes no best-by-val checkpoint, stops early on nothing and optimises nothing.
    """

    name: str
    class_names: tuple[str, ...]
    ignore_index: int
    palette: tuple[RGB, ...]
    ignore_color: RGB = (0, 0, 0)
    selection_groups: tuple[str, ...] = ()
    confirmation_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Lists from a config (an inline info: ``_target_: tconvseg.data.DatasetInfo``) become tuples.
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "palette", tuple(tuple(c) for c in self.palette))
        object.__setattr__(self, "ignore_color", tuple(self.ignore_color))
        object.__setattr__(self, "selection_groups", tuple(str(g) for g in self.selection_groups))
        object.__setattr__(self, "confirmation_groups", tuple(str(g) for g in self.confirmation_groups))
        if set(self.selection_groups) & set(self.confirmation_groups):
            raise ValueError(
                f"DatasetInfo {self.name!r}: groups {sorted(set(self.selection_groups) & set(self.confirmation_groups))} are both "
                f"selection and confirmation groups; expected a confirmation group never to be selected on"
            )
        if len(self.palette) != len(self.class_names):
            raise ValueError(
                f"DatasetInfo {self.name!r}: palette has {len(self.palette)} colours but there are "
                f"{len(self.class_names)} class names; expected one colour per class"
            )
        if 0 <= self.ignore_index < len(self.class_names):
            raise ValueError(
                f"DatasetInfo {self.name!r}: ignore_index {self.ignore_index} collides with class "
                f"{self.class_names[self.ignore_index]!r}; expected a value outside 0..{len(self.class_names) - 1}"
            )
        for colour in (*self.palette, self.ignore_color):
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise ValueError(f"DatasetInfo {self.name!r}: colour {colour!r} is not an RGB triple in 0..255")

    @property
    def num_classes(self) -> int:
        """Number of real classes (``ignore_index`` not counted)."""
        return len(self.class_names)


def voc_colormap(n: int) -> tuple[RGB, ...]:
    """The PASCAL VOC colour map: the bits of the class index are spread over R, G and B.

    This is the palette stored in VOC's ``SegmentationClass`` PNGs, so index ``i`` gets the colour
    the official devkit shows for class ``i``.
    """
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


CAMVID = DatasetInfo(
    name="camvid",
    class_names=(
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
        "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
    ),
    ignore_index=11,  # SegNet's "Unlabelled" (void) label value
    # Colours of the SegNet tutorial (Scripts/test_segmentation_camvid.py), in label order.
    palette=(
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
        (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ),
    # The drive-held-out protocol (docs/protocol.md, "Amendments", amendment 25): levers are chosen with 0006R0
    # held out and confirmed with 0016E5 held out, never chosen on. 0001TP (dusk) is neither: for information.
    selection_groups=("0006R0",),
    confirmation_groups=("0016E5",),
)

VOC = DatasetInfo(
    name="voc",
    class_names=(
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
        "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
        "train", "tvmonitor",
    ),
    ignore_index=255,  # object boundaries and "difficult" regions in SegmentationClass PNGs
    palette=voc_colormap(21),
    ignore_color=(224, 224, 192),  # the devkit's boundary colour
)

PETS = DatasetInfo(
    name="pets",
    # Trimap values 1/2/3 are stored shifted down to 0/1/2 by the Pets dataset wrapper.
    class_names=("pet", "background", "border"),
    ignore_index=255,  # unused by the trimaps; defined so every dataset has one
    palette=((220, 20, 60), (0, 0, 0), (255, 255, 255)),
)

_REGISTRY = {info.name: info for info in (CAMVID, VOC, PETS)}


def dataset_info(name: str) -> DatasetInfo:
    """Look up the `DatasetInfo` of a dataset family by name (``camvid``, ``voc``, ``pets``)."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset name {name!r}; expected one of {sorted(_REGISTRY)}") from None


def synthetic_info(num_classes: int) -> DatasetInfo:
    """Info for `tconvseg.data.datasets.synthetic.SyntheticShapesDataset` with ``num_classes`` classes.

    Class 0 is the noise background; classes ``1..num_classes-1`` are shapes drawn in their palette colour.
    """
    if not 2 <= num_classes <= 255:
        raise ValueError(
            f"synthetic num_classes must be in 2..255 (background + at least one shape), got {num_classes}"
        )
    names = ("background", *(f"shape{i}" for i in range(1, num_classes)))
    return DatasetInfo(name="synthetic", class_names=names, ignore_index=255, palette=voc_colormap(num_classes))
