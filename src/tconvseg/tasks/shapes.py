"""``tconvseg-shapes``: build FCNs and show that matched transposed convolutions restore odd sizes.

Prints, for each encoder, the encoder's steps, the decoder's matched steps and, for a few input
sizes, the size after each stage and the logits' size (always the input's). No checkpoint or
dataset needed (untrained networks). Until 2026-12 this was ``tconvseg-demo``, now the page to try
a trained model (`tconvseg.tasks.demo`).
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from tconvseg.nn import FCN, torchvision_encoder


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """``tconvseg-shapes [--encoders NAME ...] [--sizes HxW ...] [--topology 8s]``."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["resnet18", "mobilenet_v3_large", "vgg16_bn"])
    parser.add_argument("--sizes", nargs="+", default=["97x131", "360x480", "33x47"])
    parser.add_argument("--topology", default="8s", choices=["32s", "16s", "8s", "full"])
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    console = Console()
    for name in args.encoders:
        model = FCN(torchvision_encoder(name), num_classes=11, topology=args.topology).eval()
        steps = ", ".join(str(s) for s in model.encoder.steps)
        ups = ", ".join([str(b.up.step) for b in model.decoder.blocks] + [str(model.decoder.final_up.step)])
        table = Table(title=f"FCN-{args.topology} / {name}\nencoder steps: {steps}\nmatched upsampling: {ups}")
        table.add_column("input")
        table.add_column("stage sizes")
        table.add_column("logits")
        table.add_column("restored", justify="center")
        for h, w in sizes:
            x = torch.randn(1, 3, h, w)
            with torch.no_grad():
                features = model.encoder(x)
                logits = model(x)
            stages = " → ".join(f"{f.shape[-2]}x{f.shape[-1]}" for f in features)
            ok = tuple(logits.shape[-2:]) == (h, w)
            table.add_row(f"{h}x{w}", stages, f"{logits.shape[-2]}x{logits.shape[-1]}", "yes" if ok else "NO")
        console.print(table)


if __name__ == "__main__":
    main()
