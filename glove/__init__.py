"""A GloVe word-vector table in NumPy: converted once, memory-mapped, with gensim's KeyedVectors names.

    >>> import glove
    >>> g = glove.load("glove.6B.100d.txt.gz")          # or "fse/glove-wiki-gigaword-100" from the Hub
    >>> g.most_similar("frog", topn=3)
    >>> g.most_similar(positive=["king", "woman"], negative=["man"], topn=1)

Only NumPy is needed; ``huggingface_hub`` is imported when a Hub name is loaded.
"""

from .errors import GloVeError, GloVeFormatError, HubError, UnsafePickleError
from .loader import convert, load
from .table import GloVe, MeanVector, WordNotFoundError
from .wordsim import WordSimResult, evaluate_wordsim, spearman

from_arrays = GloVe.from_arrays

__all__ = [
    "GloVe",
    "GloVeError",
    "GloVeFormatError",
    "HubError",
    "MeanVector",
    "UnsafePickleError",
    "WordNotFoundError",
    "WordSimResult",
    "convert",
    "evaluate_wordsim",
    "from_arrays",
    "load",
    "spearman",
]
