"""Text relevance between pages: TF-IDF vectors and sparse cosine similarity of linked pairs.

Vectors are L2-normalised, so the cosine of a pair is the dot product of two sparse rows; pairs are
processed in chunks so memory stays bounded however many links a site has.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

__all__ = ["page_documents", "tfidf_vectors", "pair_similarity", "token_analyzer", "tokenize_many"]

TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"


def page_documents(title: Sequence[str | None], h1: Sequence[str | None], headings: Sequence[str | None],
                   main_text: Sequence[str | None]) -> list[str]:
    """One document per page; the title and h1 are repeated so that they weigh more than body words."""
    docs = []
    for t, h, hs, body in zip(title, h1, headings, main_text):
        t, h = t or "", h or ""
        docs.append(f"{t} {t} {h} {h} {hs or ''} {body or ''}")
    return docs


def tfidf_vectors(documents: Sequence[str], *, max_features: int = 200_000) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows (sublinear tf, smoothed idf). Navigation and footers are already
    out of the main text, so no words are dropped for being common: IDF down-weights them."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # loaded only when text is scored
    if not any(d.strip() for d in documents):
        return sp.csr_matrix((len(documents), 1))
    vectorizer = TfidfVectorizer(sublinear_tf=True,
                                 max_features=max_features, dtype=np.float32,
                                 token_pattern=TOKEN_PATTERN, stop_words="english")
    try:
        return vectorizer.fit_transform(documents).tocsr()
    except ValueError:  # every word was a stop word or too common
        return sp.csr_matrix((len(documents), 1))


def pair_similarity(vectors: sp.csr_matrix | np.ndarray, src: np.ndarray, dst: np.ndarray, *, chunk: int = 20_000) -> np.ndarray:
    """Cosine similarity of rows src[k] and dst[k] for every k (0 where either index is -1).
    `vectors` is a sparse matrix (tfidf) or a dense array (semantic) of L2-normalised rows.
    Pairs go in chunks of `chunk`: each gathers two rows per pair, so memory stays near
    chunk x (non-zeros of two rows) however many links a site has."""
    out = np.zeros(len(src), dtype=np.float64)
    valid = (np.asarray(src) >= 0) & (np.asarray(dst) >= 0)
    idx = np.flatnonzero(valid)
    dense = isinstance(vectors, np.ndarray)
    if dense:  # dense rows are gathered whole: keep each gather near 16 MB
        chunk = max(1, min(chunk, (1 << 22) // max(vectors.shape[1], 1)))
    for start in range(0, len(idx), chunk):
        part = idx[start:start + chunk]
        a = vectors[np.asarray(src)[part]]
        b = vectors[np.asarray(dst)[part]]
        out[part] = np.einsum("ij,ij->i", a, b) if dense else np.asarray(a.multiply(b).sum(axis=1)).ravel()
    return np.clip(out, 0.0, 1.0)


def token_analyzer():  # type: ignore[no-untyped-def]
    """The word tokenizer used for anchors and titles (lower-case, English stop words removed)."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # loaded only when text is scored
    return TfidfVectorizer(token_pattern=TOKEN_PATTERN, stop_words="english").build_analyzer()


def tokenize_many(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """token_analyzer over many texts at once: (text index, token) for each token, in text order.

    ASCII texts (nearly all anchors and titles) are split by Arrow's compute kernels: for ASCII the
    token pattern is a run of [a-z0-9] that starts with a letter, is 2+ long and is bounded by
    non-word characters, so a run holding "_" yields nothing. Other texts go through the analyzer."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    texts = pc.fill_null(texts.cast(pa.string()), "")
    ascii_mask = pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)
    ascii_idx = np.flatnonzero(ascii_mask)
    runs = pc.split_pattern_regex(pc.utf8_lower(texts.take(pa.array(ascii_idx))), pattern="[^a-z0-9_]+")
    words = pc.list_flatten(runs)
    owner = ascii_idx[pc.list_parent_indices(runs).to_numpy()]
    keep = pc.and_(pc.match_substring_regex(words, pattern="^[a-z][a-z0-9]+$"),
                   pc.invert(pc.is_in(words, value_set=pa.array(sorted(ENGLISH_STOP_WORDS)))))
    owner, words = owner[keep.to_numpy(zero_copy_only=False)], words.filter(keep)
    other = np.flatnonzero(~ascii_mask)
    if len(other):
        analyze = token_analyzer()
        extra_owner, extra_words = [], []
        for i, text in zip(other.tolist(), texts.take(pa.array(other)).to_pylist()):
            tokens = analyze(text)
            extra_owner.extend([i] * len(tokens))
            extra_words.extend(tokens)
        owner = np.concatenate([owner, np.asarray(extra_owner, np.int64)])
        words = pa.concat_arrays([words, pa.array(extra_words, pa.string())])
        order = np.argsort(owner, kind="stable")
        owner, words = owner[order], words.take(pa.array(order))
    return owner.astype(np.int64, copy=False), words
