"""Speed benchmark: prints a table; no targets are asserted anywhere.

    python scripts/benchmark.py [--size 180x240] [--batch 8] [--steps 5] [--threads N]

1. Training-step throughput (forward + backward + AdamW) of FCN variants on this machine's CPU
   (or CUDA with --device cuda).
2. The from-scratch reference transposed conv against torch's, forward only, on a decoder-sized
   problem.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from tconvseg.nn import FCN, torchvision_encoder
from tconvseg.nn.reference import conv_transpose2d_reference

VARIANTS = [
    ("resnet18", "8s", 64, 1),
    ("resnet18", "8s", None, 0),
    ("resnet18", "32s", None, 0),
    ("resnet34", "full", 64, 1),
    ("mobilenet_v3_large", "8s", 64, 1),
    ("resnet50", "8s", 64, 1),
]


def time_train_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters())
    for i in range(steps + 1):
        if i == 1:  # the first step pays one-off allocation and kernel selection costs
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="180x240")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, h, w, device=args.device)
    y = torch.randint(0, 11, (args.batch, h, w), device=args.device)

    table = Table(title=f"training step, batch {args.batch} at {h}x{w}, {args.device}, {torch.get_num_threads()} threads")
    for column in ("encoder", "topology", "decoder", "params (M)", "s / step", "img / s"):
        table.add_column(column, justify="right")
    for encoder, topology, width, refine in VARIANTS:
        model = FCN(torchvision_encoder(encoder), 11, topology=topology, decoder_channels=width, refine=refine).to(args.device)
        seconds = time_train_steps(model, x, y, args.steps)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        decoder = "class space" if width is None else f"{width} ch, refine {refine}"
        table.add_row(encoder, topology, decoder, f"{params:.1f}", f"{seconds:.3f}", f"{args.batch / seconds:.1f}")
    Console(width=120).print(table)

    ref = Table(title="transposed conv k3 s2 p1, 64->64 ch, batch 8, 90x120 -> 180x240, forward")
    for column in ("implementation", "ms / call"):
        ref.add_column(column, justify="right")
    xs = torch.randn(8, 64, 90, 120, device=args.device)
    weight = torch.randn(64, 64, 3, 3, device=args.device)
    for name, fn in [("torch.nn.functional.conv_transpose2d", F.conv_transpose2d), ("tconvseg reference", conv_transpose2d_reference)]:
        fn(xs, weight, None, 2, 1, 1)
        start = time.perf_counter()
        for _ in range(3):
            fn(xs, weight, None, 2, 1, 1)
        if xs.is_cuda:
            torch.cuda.synchronize()
        ref.add_row(name, f"{(time.perf_counter() - start) / 3 * 1000:.1f}")
    Console(width=120).print(ref)


if __name__ == "__main__":
    main()
