"""The one base of bnexp's own exceptions.

A ``BnexpError`` is a request that cannot be done as asked: bad input (a
config key, a value, a file that is not as bnexp writes it) or a folder that
cannot be written. Its message is one line per problem, naming the key or the
file and what is allowed. The CLI turns every one into those lines and exit
code 2 (but ``runner.RunFailed``, a run that raised, which ``bnexp train``
reports with exit 1); a library user catches this one class.
"""


class BnexpError(Exception):
    """A request bnexp cannot do as asked; the message says why, one line per problem."""
