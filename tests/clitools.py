"""Shared helpers of the CLI tests."""

import csv

from click.testing import CliRunner

from bnexp.cli import main


def invoke(*args):
    """Run ``bnexp ARGS...`` in-process; returns click's Result."""
    return CliRunner().invoke(main, [str(a) for a in args])


def read(path):
    """A CSV file's rows as dicts of strings (exactly as written)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
