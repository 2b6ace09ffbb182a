"""Static vs contextual word vectors (a first version: the contextual side only)."""

import numpy as np

from minibert import DEFAULT_MODEL, BertModel, Tokenizer

model, tok = BertModel.from_pretrained(DEFAULT_MODEL), Tokenizer.from_pretrained(DEFAULT_MODEL)
sentences = ["The cat sat on the mat.", "The cat chased the mouse."]
batch = tok(sentences)
out = model(**batch)
vectors = [out.last_hidden_state[i, batch.tokens(i).index("cat")] for i in range(len(sentences))]
for s, v in zip(sentences, vectors):
    print(f"{s:<28} cat -> {np.array2string(v[:6], precision=3)} ...")
cos = vectors[0] @ vectors[1] / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1])
print(f"cosine between the two 'cat' vectors: {cos:.3f} (a static table would say 1.000)")
