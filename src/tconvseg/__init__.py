"""tconvseg: semantic segmentation whose decoders restore resolution with matched transposed convolutions."""

__version__ = "0.1.0"
