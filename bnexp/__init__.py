"""bnexp: a command-line lab bench for normalization experiments."""

__version__ = "0.1.0"
