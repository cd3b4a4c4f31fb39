"""bnexp: a command-line lab bench for normalization experiments.

In a notebook (see ``bnexp.api``)::

    import bnexp
    r = bnexp.run("book_bn", model__norm="none")         # train one config in memory
    sw = bnexp.load_sweep("runs/weight-scale")            # tables, intervals, the claim
    bnexp.figure("runs/weight-scale", kind="final", ax=ax)  # any figure, into your axes
"""

__version__ = "0.1.0"

_API = ("run", "run_sweep", "load_run", "load_sweep", "load_config", "figure", "Run",
        "SweepResult")


def __getattr__(name: str):
    # The API loads numpy and matplotlib, so only when first used: `bnexp --help`
    # imports this package and must stay fast.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'bnexp' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
