"""Instance-batch normalisation (IBN-Net, Pan et al., ECCV 2018) for encoders.

Light, colour and contrast differ from one drive or camera to the next, and they live in the shallow
features. IBN-Net normalises part of those features per image (instance norm), which removes such
differences there, and keeps batch statistics for the rest, which carry content. Its "IBN-a" form puts
this in the first norm of each residual block of every stage but the deepest, leaving the norm before
the block's addition alone; `add_instance_batch_norm` does that for a `StagedEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class InstanceBatchNorm2d(nn.Module):
    """Normalise the first ``instance_channels`` channels per image, the rest per batch.

    ``forward(x (N, C, H, W))`` returns ``(N, C, H, W)``: channels ``[:k]`` through ``InstanceNorm2d``
    (affine, no running statistics: an image is normalised by its own statistics in training and at
    inference alike, so a 1x1 map is refused in both), channels ``[k:]`` through a ``BatchNorm2d`` with the settings of ``batch_norm``.

    Built from an existing ``batch_norm`` (C channels), whose affine weights and running statistics are
    copied into the two parts, so a swap keeps the batch half of a trained layer exactly as it was.
    """

    def __init__(self, batch_norm: nn.BatchNorm2d, instance_ratio: float = 0.5) -> None:
        super().__init__()
        channels = batch_norm.num_features
        if not 0.0 < instance_ratio < 1.0:
            raise ValueError(f"instance_ratio must lie strictly between 0 and 1, got {instance_ratio!r}")
        k = int(channels * instance_ratio)
        if k < 1 or k >= channels:
            raise ValueError(
                f"a batch norm of {channels} channels cannot be split at instance_ratio={instance_ratio}: "
                f"it would leave {k} channel(s) to the instance norm and {channels - k} to the batch norm; "
                "each part needs at least one"
            )
        self.instance_channels = k
        self.instance = nn.InstanceNorm2d(k, eps=batch_norm.eps, affine=True)
        self.batch = nn.BatchNorm2d(
            channels - k,
            eps=batch_norm.eps,
            momentum=batch_norm.momentum,
            affine=batch_norm.affine,
            track_running_stats=batch_norm.track_running_stats,
        )
        with torch.no_grad():
            if batch_norm.affine:
                self.instance.weight.copy_(batch_norm.weight[:k])
                self.instance.bias.copy_(batch_norm.bias[:k])
                self.batch.weight.copy_(batch_norm.weight[k:])
                self.batch.bias.copy_(batch_norm.bias[k:])
            if batch_norm.track_running_stats:
                self.batch.running_mean.copy_(batch_norm.running_mean[k:])
                self.batch.running_var.copy_(batch_norm.running_var[k:])
                self.batch.num_batches_tracked.copy_(batch_norm.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] * x.shape[-1] == 1:
            # torch's own message ("Expected more than 1 spatial element") names neither the layer nor why.
            raise ValueError(
                f"instance-batch norm got a 1x1 feature map (input {tuple(x.shape)}): per-image statistics "
                "need at least two pixels per channel; use larger inputs or fewer IBN stages (ibn_stages)"
            )
        head, tail = torch.split(x, [self.instance_channels, x.shape[1] - self.instance_channels], dim=1)
        out = torch.cat([self.instance(head), self.batch(tail)], dim=1)
        if x.is_contiguous(memory_format=torch.channels_last):
            # instance_norm returns NCHW; left so, every later layer of a channels_last model would
            # convert back and forth (measured: the encoder's step 1.7x slower instead of about 1.3x).
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def extra_repr(self) -> str:
        return f"instance_channels={self.instance_channels}, batch_channels={self.batch.num_features}"


def add_instance_batch_norm(
    stages: Sequence[nn.Module],
    block_types: tuple[type[nn.Module], ...],
    instance_ratio: float = 0.5,
) -> int:
    """Turn the first ``BatchNorm2d`` of every block in ``stages`` into an `InstanceBatchNorm2d`, in place.

    A block is any sub-module whose type is in ``block_types`` (e.g. torchvision's ``BasicBlock``,
    ``Bottleneck``, ``InvertedResidual``); layers outside blocks (a stem) keep their norms, as in IBN-a.
    Returns the number of norms replaced; raises ``ValueError`` when ``stages`` hold no block with a
    batch norm, so that the option never silently does nothing.
    """
    replaced = 0
    for stage in stages:
        for block in [m for m in stage.modules() if isinstance(m, block_types)]:
            found = _first_batch_norm(block)
            if found is not None:
                parent, name, norm = found
                setattr(parent, name, InstanceBatchNorm2d(norm, instance_ratio))
                replaced += 1
    if replaced == 0:
        names = ", ".join(t.__name__ for t in block_types)
        raise ValueError(
            f"instance-batch norm found no block ({names}) with a BatchNorm2d in the {len(stages)} stage(s) "
            "it was given: this encoder has no residual blocks there to put it in"
        )
    return replaced


def _first_batch_norm(block: nn.Module) -> tuple[nn.Module, str, nn.BatchNorm2d] | None:
    for path, module in block.named_modules():  # depth first: the norm the input meets first
        if type(module) is nn.BatchNorm2d:
            parent_path, _, name = path.rpartition(".")
            return block.get_submodule(parent_path), name, module
    return None
