"""bnexp's NumPy training engine: layers, loss, optimizers and the MLP."""

from .layers import (
    BatchNorm,
    Dropout,
    GroupNorm,
    Identity,
    Layer,
    LayerNorm,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
)
from .loss import SoftmaxCrossEntropy
from .model import MLP, Record, build_mlp, init_std
from .optim import SGD, Adam, Momentum, Optimizer, make_optimizer

__all__ = [
    "Adam", "BatchNorm", "Dropout", "GroupNorm", "Identity", "Layer", "LayerNorm",
    "Linear", "MLP", "Momentum", "Optimizer", "Record", "ReLU", "SGD", "Sigmoid",
    "SoftmaxCrossEntropy", "Tanh", "build_mlp", "init_std", "make_optimizer",
]
