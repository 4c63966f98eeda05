"""metarec_classic: choose, configure and tune classical recommenders by meta-learning.

The public entry point is :class:`MetaRecommender`; the layers below it live in
``metarec_classic.data``, ``.recommenders``, ``.evaluation``, ``.tuning``,
``.metafeatures`` and ``.meta``.
"""

import logging

from metarec_classic._metarecommender import MetaRecommender
from metarec_classic._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["MetaRecommender", "__version__"]
