"""metarec_classic: choose, configure and tune classical recommenders by meta-learning."""

import logging

from metarec_classic._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
