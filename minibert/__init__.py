"""minibert: a framework-free BERT in NumPy.

    from minibert import BertModel, Tokenizer
    model = BertModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    tok = Tokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    out = model(**tok(["The cat sat on the mat.", "The cat chased the mouse."]))
    out.last_hidden_state   # (B, T, H) float32

Task heads: AutoModelForMaskedLM + fill_mask, AutoModelForSequenceClassification, CrossEncoder (predict, rank).
"""

from .config import BertConfig
from .contextual import word_vectors
from .distill import distill
from .encoder import SentenceEncoder
from .errors import CheckpointError, ConfigError, InputError, MinibertError, OutputError
from .hub import DEFAULT_MODEL
from .modeling import (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, BertForMaskedLM,
                       BertForSequenceClassification, BertModel, BertOutput, MaskedLMOutput, SequenceClassifierOutput)
from .tasks import CrossEncoder, fill_mask
from .retrieval import quantize_embeddings, semantic_search
from .static import StaticEncoder
from .tokenizer import Batch, Tokenizer

__all__ = [
    "AutoModel", "BertModel", "BertOutput", "BertConfig", "Tokenizer", "Batch", "DEFAULT_MODEL", "word_vectors",
    "MinibertError", "CheckpointError", "ConfigError", "InputError", "OutputError",
    "SentenceEncoder", "quantize_embeddings", "semantic_search", "StaticEncoder", "distill",
    "AutoModelForMaskedLM", "AutoModelForSequenceClassification", "BertForMaskedLM", "BertForSequenceClassification",
    "MaskedLMOutput", "SequenceClassifierOutput", "CrossEncoder", "fill_mask",
]
__version__ = "0.1.0"
