"""The FCN decoder (Long et al.): 32s, 16s, 8s, or every stage ("full").

A `SkipDecoder` whose skip stages are the topology's: none below the coarsest for 32s, one
for 16s, two for 8s (the paper's topologies assume a stride-32 encoder), all for "full".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tconvseg.nn.decoders.skips import SkipDecoder
from tconvseg.nn.shapes import DownStep

Topology = Literal["32s", "16s", "8s", "full"]

#: How many stages below the coarsest one feed a skip connection (``None``: all of them).
SKIPS_PER_TOPOLOGY: dict[str, int | None] = {"32s": 0, "16s": 1, "8s": 2, "full": None}


def fcn_skip_stages(topology: Topology, num_stages: int) -> list[int]:
    """The stages a topology fuses, coarse to fine, for an encoder of ``num_stages`` stages."""
    if topology not in SKIPS_PER_TOPOLOGY:
        raise ValueError(f"topology must be one of {list(SKIPS_PER_TOPOLOGY)}, got {topology!r}")
    coarsest = num_stages - 1
    n_skips = SKIPS_PER_TOPOLOGY[topology]
    n_skips = coarsest if n_skips is None else n_skips
    if n_skips > coarsest:
        raise ValueError(f"topology {topology!r} needs {n_skips + 1} encoder stages, the encoder has {num_stages}")
    return list(range(coarsest - 1, coarsest - 1 - n_skips, -1))


class FCNDecoder(SkipDecoder):
    """FCN's decoder: the topology picks the skip stages; fusion by sum unless told otherwise.

    ``forward(features, size)`` → ``(N, out_channels, H, W)``. With ``decoder_channels=None`` and
    ``out_channels = K`` it is the paper's decoder exactly: score layers, ``K → K`` matched
    upsamplings, sums, no refinement.

    Args:
        encoder_channels: the encoder's ``out_channels``.
        encoder_steps: the encoder's ``steps``.
        out_channels: channels returned at the input size (the number of classes in `FCN`).
        topology: ``"32s"``, ``"16s"``, ``"8s"`` or ``"full"``.
        **options: ``decoder_channels``, ``fusion``, ``refine``, ``norm_layer``,
            ``activation_layer``, ``upsample_init``, ``upsample_trainable`` of `SkipDecoder`.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_steps: Sequence[DownStep],
        out_channels: int,
        *,
        topology: Topology = "8s",
        **options: Any,
    ) -> None:
        skip_stages = fcn_skip_stages(topology, len(encoder_steps))
        super().__init__(encoder_channels, encoder_steps, out_channels, skip_stages=skip_stages, **options)
        self.topology = topology
