"""bnexp's NumPy training engine: layers, loss, optimizers and the network."""

from . import backend
from .backend import Backend
from .conv import AvgPool2d, Conv2d, Flatten, GlobalAvgPool, MaxPool2d
from .layers import Dropout, Identity, Layer, Linear, NoisyShift, ReLU, Sigmoid, Tanh
from .loss import SoftmaxCrossEntropy
from .model import MLP, Network, Record, build_mlp, init_std
from .norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, WeightNorm
from .optim import SGD, Adam, Momentum, Optimizer, make_optimizer

__all__ = [
    "Adam", "AvgPool2d", "BatchNorm", "Conv2d", "Dropout", "Flatten", "GlobalAvgPool",
    "GroupNorm", "Identity", "InstanceNorm", "Layer", "LayerNorm", "Linear", "MLP",
    "MaxPool2d", "Momentum", "Network", "NoisyShift", "Optimizer", "Record", "ReLU", "SGD", "Sigmoid",
    "SoftmaxCrossEntropy", "Tanh", "WeightNorm", "build_mlp", "init_std", "backend", "Backend",
    "make_optimizer",
]
