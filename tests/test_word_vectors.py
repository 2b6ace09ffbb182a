"""minibert.word_vectors: a word's pieces found through the tokenizer's offsets, averaged, at any layer, batched."""

import numpy as np
import pytest

from minibert import InputError, word_vectors
from minibert.contextual import find_word, locate


def direct(model, tok, sentence, pieces, layer=-1, start=0):
    """Reference: the mean hidden state of the sub-list `pieces` of the sentence's tokens (searched from `start`)."""
    batch = tok([sentence])
    tokens = batch.tokens(0)
    first = next(i for i in range(start, len(tokens)) if tokens[i:i + len(pieces)] == pieces)
    hidden = model(**batch, output_hidden_states=True).hidden_states[layer][0]  # (T, H)
    return hidden[first:first + len(pieces)].mean(axis=0)


def test_multi_piece_word_is_the_mean_of_its_pieces(minilm, minilm_tokenizer):
    sentence = "The host was unaffable all evening."
    pieces = minilm_tokenizer.tokenize("unaffable")
    assert len(pieces) > 1  # the point of the test: several word pieces
    [where] = locate(minilm_tokenizer, sentence, "unaffable")
    assert list(where.pieces) == pieces and where.text == "unaffable"
    got = word_vectors(minilm, minilm_tokenizer, sentence, "unaffable")
    np.testing.assert_allclose(got[0], direct(minilm, minilm_tokenizer, sentence, pieces), atol=1e-5)


def test_repeated_word_by_occurrence_and_by_span(minilm, minilm_tokenizer):
    sentence = "The bank by the river is not the bank that lends money."
    second = sentence.index("bank", 10)
    assert locate(minilm_tokenizer, sentence, "bank")[0].span == (4, 8)
    assert locate(minilm_tokenizer, sentence, ("bank", 1))[0].span == (second, second + 4)
    by_index, by_span, first = word_vectors(minilm, minilm_tokenizer, [sentence] * 3,
                                            [("bank", 1), (second, second + 4), "bank"])
    np.testing.assert_array_equal(by_index, by_span)
    np.testing.assert_allclose(by_index, direct(minilm, minilm_tokenizer, sentence, ["bank"], start=5), atol=1e-5)
    assert float(by_index @ first) / np.linalg.norm(by_index) / np.linalg.norm(first) < 0.99  # two different vectors


def test_accented_word(minilm, minilm_tokenizer):
    sentence = "Nous avons bu un café noir au Café de Flore."
    [where] = locate(minilm_tokenizer, sentence, "café")
    assert where.span == (17, 21) and where.text == "café"
    assert where.pieces == ("cafe",)  # this uncased tokenizer strips accents; the span still points at "café"
    np.testing.assert_allclose(word_vectors(minilm, minilm_tokenizer, sentence, "café")[0],
                               direct(minilm, minilm_tokenizer, sentence, ["cafe"]), atol=1e-5)
    assert locate(minilm_tokenizer, sentence, ("CAFÉ", 1))[0].span == (30, 34)


def test_casing(minilm, minilm_tokenizer):
    assert find_word("The BANK is closed.", "bank") == (4, 8)
    assert find_word("the bank is closed.", "Bank") == (4, 8)
    upper, lower = word_vectors(minilm, minilm_tokenizer, ["The BANK is closed.", "the bank is closed."], "BaNk")
    np.testing.assert_array_equal(upper, lower)  # an uncased model: the same ids, the same vector


def test_whole_words_only():
    assert find_word("concatenate the cat", "cat") == (16, 19)
    assert find_word("cat-like, the cat", "cat") == (0, 3)  # a hyphen ends a word
    with pytest.raises(InputError, match=r"word 'cat' not found \(as a whole word, ignoring case\) in sentence "
                                         r"'concatenate'"):
        find_word("concatenate", "cat")


def test_absent_word_names_word_and_sentence(minilm, minilm_tokenizer):
    with pytest.raises(InputError, match=r"word 'mouse' not found .* in sentence 'The cat sat on the mat\.'"):
        word_vectors(minilm, minilm_tokenizer, ["The mouse ran.", "The cat sat on the mat."], "mouse")
    with pytest.raises(InputError, match=r"word 'cat': asked for occurrence 1 \(0-based\) but sentence "
                                         r"'The cat sat\.' has only 1"):
        word_vectors(minilm, minilm_tokenizer, "The cat sat.", ("cat", 1))


@pytest.mark.parametrize("words, message", [
    (["cat"], r"words: 1 words for 2 sentences; give one word for all or one per sentence"),
    ([(0, 99), "cat"], r"character span \(0, 99\): expected 0 <= start < end <= 12 in sentence 'The cat sat\.'"),
    ([(3, 4), "cat"], r"character span \(3, 4\) holds only whitespace in sentence 'The cat sat\.'"),
    ([3, "cat"], r"words\[0\]: expected a word, \(word, occurrence\) or \(start, end\), got 3"),
    ("", r"word: expected a non-empty string, got ''"),
])
def test_bad_words(minilm, minilm_tokenizer, words, message):
    with pytest.raises(InputError, match=message):
        word_vectors(minilm, minilm_tokenizer, ["The cat sat.", "A cat ran."], words)


def test_word_beyond_the_token_limit(minilm, minilm_tokenizer):
    sentence = "word " * 600 + "cat"
    with pytest.raises(InputError, match=r"word 'cat' \(characters 3000-3003\) has no word pieces in sentence "
                                         r"'word word .*\.\.\.': it lies beyond the first 512 tokens the model reads"
                       ) as e:
        word_vectors(minilm, minilm_tokenizer, sentence, "cat")
    assert len(str(e.value)) == 220  # the 3,003-character sentence is cut short in the message


def test_layers(minilm, minilm_tokenizer):
    sentences = ["The cat sat on the mat.", "The cat chased the mouse."]
    all_layers = word_vectors(minilm, minilm_tokenizer, sentences, "cat", layers="all")
    L, H = minilm.config.num_hidden_layers, minilm.config.hidden_size
    assert all_layers.shape == (2, L + 1, H) and all_layers.dtype == np.float32
    np.testing.assert_array_equal(word_vectors(minilm, minilm_tokenizer, sentences, "cat"), all_layers[:, L])
    np.testing.assert_array_equal(word_vectors(minilm, minilm_tokenizer, sentences, "cat", layers=[0, -1, 3]),
                                  all_layers[:, [0, L, 3]])
    np.testing.assert_allclose(all_layers[0, 0], direct(minilm, minilm_tokenizer, sentences[0], ["cat"], layer=0),
                               atol=1e-6)
    # Layer 0 holds no context: "cat" at the same position in both sentences has the same vector.
    np.testing.assert_array_equal(all_layers[0, 0], all_layers[1, 0])
    for bad in (L + 1, -(L + 2), "last", [], [1.5]):
        with pytest.raises(InputError, match="layers: "):
            word_vectors(minilm, minilm_tokenizer, sentences, "cat", layers=bad)


def test_batches_give_the_same_vectors_in_the_same_order(minilm, minilm_tokenizer):
    sentences = ["A cat.", "The old grey cat slept in the warm sun all afternoon long.", "Cat!",
                 "My neighbour's cat, a fat tabby, ignores everyone.", "The cat sat."]
    batched = word_vectors(minilm, minilm_tokenizer, sentences, "cat", layers="all", batch_size=2)
    for i, s in enumerate(sentences):
        alone = word_vectors(minilm, minilm_tokenizer, s, "cat", layers="all")[0]
        np.testing.assert_allclose(batched[i], alone, atol=2e-5)


def test_vocab_txt_tokenizer(odd, odd_tokenizer):
    """The odd-shaped model has only a vocab.txt: the offsets come from the tokenizer built from it."""
    sentence = "Tokenization of unexpectedly long words."
    [where] = locate(odd_tokenizer, sentence, "unexpectedly")
    assert "".join(p.removeprefix("##") for p in where.pieces) == "unexpectedly"
    got = word_vectors(odd, odd_tokenizer, sentence, "unexpectedly", layers=2)
    np.testing.assert_allclose(got[0], direct(odd, odd_tokenizer, sentence, list(where.pieces), layer=2), atol=1e-5)
