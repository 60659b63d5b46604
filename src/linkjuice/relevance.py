"""Text relevance between pages: TF-IDF vectors and sparse cosine similarity of linked pairs.

Vectors are L2-normalised, so the cosine of a pair is the dot product of two sparse rows; pairs are
processed in chunks so memory stays bounded however many links a site has.
"""

from __future__ import annotations

import functools
import importlib.util
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

__all__ = ["Part", "page_documents", "term_counts", "tfidf_vectors", "pair_similarity", "token_analyzer",
           "tokenize_many"]

TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"

Texts = pa.Array | pa.ChunkedArray | Sequence[str | None]


class Part(NamedTuple):
    """One text per document whose words count `repeat` times: a document is the words of its parts."""

    texts: Texts
    repeat: int = 1


def page_documents(title: Texts, h1: Texts, headings: Texts, main_text: Texts) -> list[Part]:
    """One document per page; the title and h1 count twice so that they weigh more than body
    words (the words of the text "title title h1 h1 headings main_text", without building it)."""
    return [Part(title, 2), Part(h1, 2), Part(headings), Part(main_text)]


# Documents are split into words this many bytes of text at a time: memory stays near a few
# times this (Arrow's word lists and one int64 key per word) however much text a site has.
_TEXT_CHUNK = 64 << 20
# Chunks split at once (each holds a few times _TEXT_CHUNK while it is split).
_COUNT_THREADS = 2


def term_counts(documents: Texts | Sequence[Part], *, max_features: int | None = None) -> tuple[sp.csr_array, pa.Array]:
    """The document-term count matrix (float32, sorted indices) and its vocabulary: what sklearn's
    CountVectorizer(token_pattern=TOKEN_PATTERN, stop_words="english", max_features=...,
    dtype=float32).fit_transform gives, columns in the same (sorted) order and the same terms kept
    by max_features, but with the words split by tokenize_many, many documents at a time."""
    is_parts = isinstance(documents, list | tuple) and len(documents) and isinstance(documents[0], Part)
    parts: Sequence[Part] = documents if is_parts else [Part(documents)]  # type: ignore[assignment]
    columns = [_string_array(p.texts) for p in parts]
    n = len(columns[0])
    # Rows in chunks of about _TEXT_CHUNK bytes of text.
    size = np.zeros(n, np.int64)
    for col in columns:
        size += pc.fill_null(pc.binary_length(col), 0).to_numpy(zero_copy_only=False)
    cuts = np.searchsorted(np.cumsum(size), np.arange(_TEXT_CHUNK, int(size.sum()), _TEXT_CHUNK), side="right")
    bounds = np.unique(np.concatenate(([0], cuts, [n])))
    rows, terms, counts, dictionaries = [], [], [], []
    repeats = [p.repeat for p in parts]

    def count(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
        return _chunk_counts([col.slice(lo, hi - lo) for col in columns], repeats)

    def keep(lo: int, chunk: Future) -> None:
        r, t, c, d = chunk.result()
        rows.append((r + lo).astype(np.int32))  # 4 bytes a value: these are kept for every chunk
        terms.append(t.astype(np.int32))
        counts.append(c.astype(np.float32))
        dictionaries.append(d)

    # Chunks on two threads (Arrow's splitting and numpy's sort release the GIL: 10M titles took
    # 7.9 s on one), kept in order; no more chunks are split ahead than there are threads.
    pending: deque[tuple[int, Future]] = deque()
    with ThreadPoolExecutor(_COUNT_THREADS, thread_name_prefix="linkjuice-terms") as pool:
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            pending.append((lo, pool.submit(count, lo, hi)))
            if len(pending) >= _COUNT_THREADS:
                keep(*pending.popleft())
        while pending:
            keep(*pending.popleft())
    # One vocabulary for all chunks, sorted as sklearn sorts its terms (UTF-8 byte order is code point order).
    merged = pa.concat_arrays(dictionaries) if dictionaries else pa.array([], pa.string())
    encoded = merged.dictionary_encode()
    vocabulary = encoded.dictionary
    order = pc.array_sort_indices(vocabulary)
    rank = np.empty(len(vocabulary), np.int64)
    rank[order.to_numpy()] = np.arange(len(vocabulary))
    vocabulary = vocabulary.take(order)
    to_global = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    offsets = np.cumsum([0] + [len(d) for d in dictionaries])
    columns_of = [to_global[offsets[k]:offsets[k + 1]][t] for k, t in enumerate(terms)]
    row = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    col = np.concatenate(columns_of) if columns_of else np.zeros(0, np.int64)
    data = np.concatenate(counts) if counts else np.zeros(0, np.float32)
    index = np.int32 if max(len(data), len(vocabulary)) < 2**31 else np.int64
    indptr = np.concatenate(([0], np.cumsum(np.bincount(row, minlength=n)))).astype(index)
    matrix = sp.csr_array((data, col.astype(index), indptr), shape=(n, len(vocabulary)))
    matrix.sort_indices()
    if max_features is not None and len(vocabulary) > max_features:
        # CountVectorizer._limit_features: the max_features terms of highest total count, ties
        # broken as its (unstable) argsort of the float32 column sums breaks them.
        totals = np.asarray(matrix.sum(axis=0)).ravel()
        kept = np.sort((-totals).argsort()[:max_features])
        matrix, vocabulary = _keep_columns(matrix, kept), vocabulary.take(pa.array(kept))
    return matrix, vocabulary


def _string_array(texts: Texts) -> pa.Array:
    """One Arrow array, chunks combined as large_string (over 2 GB of text needs 64-bit offsets);
    tokenize_many casts each chunk of documents to string."""
    if isinstance(texts, pa.ChunkedArray):
        return texts.cast(pa.large_string()).combine_chunks()
    return texts if isinstance(texts, pa.Array) else pa.array(list(texts), pa.string())


def _chunk_counts(columns: list[pa.Array], repeats: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
    """(row, term code, count) of each distinct word of each row of the columns (one document per
    row, each column's words counted `repeat` times), and the chunk's words (term code -> word)."""
    owners, words, weights = [], [], []
    for col, repeat in zip(columns, repeats):
        owner, tokens = tokenize_many(col)
        owners.append(owner)
        words.append(tokens)
        weights.append(np.full(len(owner), repeat, np.int64))
    encoded = pa.concat_arrays(words).dictionary_encode() if words else pa.array([], pa.string()).dictionary_encode()
    width = max(len(encoded.dictionary), 1)
    # One sort of (row, term, repeat) packed into an int64 (the repeat in the low bits) counts
    # each row's terms: an argsort to carry the repeats along would cost more.
    shift = int(max(repeats, default=1)).bit_length()
    key = np.concatenate(owners) * width + encoded.indices.to_numpy(zero_copy_only=False)
    packed = np.sort((key << shift) | np.concatenate(weights))
    key = packed >> shift
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) else np.zeros(0, np.int64)
    count = np.add.reduceat(packed & ((1 << shift) - 1), starts) if len(starts) else np.zeros(0, np.int64)
    key = key[starts]
    return key // width, key % width, count, encoded.dictionary


def _keep_columns(matrix: sp.csr_array, kept: np.ndarray) -> sp.csr_array:
    """matrix[:, kept] for sorted `kept`, by renumbering indices (no fancy-indexing copy)."""
    new = np.full(matrix.shape[1], -1, np.int64)
    new[kept] = np.arange(len(kept))
    col = new[matrix.indices]
    keep = col >= 0
    row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    indptr = np.concatenate(([0], np.cumsum(np.bincount(row[keep], minlength=matrix.shape[0]))))
    indptr = indptr.astype(matrix.indptr.dtype)
    return sp.csr_array((matrix.data[keep], col[keep].astype(matrix.indices.dtype), indptr),
                        shape=(matrix.shape[0], len(kept)))


def tfidf_vectors(documents: Texts | Sequence[Part], *, max_features: int = 200_000) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows (sublinear tf, smoothed idf), float32 with sorted indices: sklearn's
    TfidfVectorizer(sublinear_tf=True, max_features=..., dtype=float32, token_pattern=TOKEN_PATTERN,
    stop_words="english"), from term_counts. Navigation and footers are already out of the main
    text, so no words are dropped for being common: IDF down-weights them. `documents`: one text per
    document, or Parts (page_documents)."""
    from sklearn.feature_extraction.text import TfidfTransformer  # loaded only when text is scored
    counts, vocabulary = term_counts(documents, max_features=max_features)
    if not len(vocabulary):  # no text, or every word a stop word
        return sp.csr_matrix((counts.shape[0], 1))
    vectors = sp.csr_matrix(TfidfTransformer(sublinear_tf=True).fit_transform(counts))
    vectors.sort_indices()
    return vectors


def pair_similarity(vectors: sp.csr_matrix | np.ndarray, src: np.ndarray, dst: np.ndarray, *, chunk: int = 20_000,
                    dtype: type = np.float64) -> np.ndarray:
    """Cosine similarity of rows src[k] and dst[k] for every k (0 where either index is -1).
    `vectors` is a sparse matrix (tfidf) or a dense array (semantic) of L2-normalised rows, and
    the cosines are rounded as the vectors' dtype (float32: what the store keeps). Sparse rows go
    to the numba kernel (_kernels.pair_dots) when it is installed; otherwise, and for dense rows,
    pairs go in chunks of `chunk`: each gathers two rows per pair, so memory stays near
    chunk x (non-zeros of two rows) however many links a site has. `dtype` is the result's
    (float64; float32 from float32 vectors copies nothing: what the store keeps)."""
    from .score import _compiled_kernels  # numba is optional: the same rule as the rank kernels

    src, dst = np.asarray(src), np.asarray(dst)
    dense = isinstance(vectors, np.ndarray)
    kernels = None if dense else _compiled_kernels(len(src))
    if kernels is not None:
        rows = sp.csr_matrix(vectors)
        if not rows.has_sorted_indices:
            rows = rows.sorted_indices()
        dots = kernels.pair_dots(rows.indptr, rows.indices, rows.data, src, dst)
        return np.clip(dots, 0.0, 1.0, out=dots).astype(dtype, copy=False)
    out = np.zeros(len(src), dtype=np.float64)
    idx = np.flatnonzero((src >= 0) & (dst >= 0))
    if dense:  # dense rows are gathered whole: keep each gather near 16 MB
        chunk = max(1, min(chunk, (1 << 22) // max(vectors.shape[1], 1)))
    for start in range(0, len(idx), chunk):
        part = idx[start:start + chunk]
        a = vectors[src[part]]
        b = vectors[dst[part]]
        out[part] = np.einsum("ij,ij->i", a, b) if dense else np.asarray(a.multiply(b).sum(axis=1)).ravel()
    return np.clip(out, 0.0, 1.0, out=out).astype(dtype, copy=False)


@functools.cache
def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (what its analyzer removes), read from their module alone:
    importing scikit-learn itself costs ~1 s of CPU, which a crawl's finalize needs for nothing
    else. Through the package when that file cannot be loaded alone (a frozen or zipped install)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "feature_extraction" / "_stop_words.py"
        words = importlib.util.spec_from_file_location("_linkjuice_stop_words", path)
        if words is not None and words.loader is not None and path.is_file():
            module = importlib.util.module_from_spec(words)
            words.loader.exec_module(module)
            found = getattr(module, "ENGLISH_STOP_WORDS", None)
            if isinstance(found, frozenset) and found:
                return found
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def token_analyzer():  # type: ignore[no-untyped-def]
    """The word tokenizer used for anchors and titles (lower-case, English stop words removed)."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # loaded only when text is scored
    return TfidfVectorizer(token_pattern=TOKEN_PATTERN, stop_words="english").build_analyzer()


def tokenize_many(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """token_analyzer over many texts at once: (text index, token) for each token, in text order.

    ASCII texts (nearly all anchors and titles) are split by Arrow's compute kernels: for ASCII the
    token pattern is a run of [a-z0-9] that starts with a letter, is 2+ long and is bounded by
    non-word characters, so a run holding "_" yields nothing. Other texts go through the analyzer."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    texts = pc.fill_null(texts.cast(pa.string()), "")
    ascii_mask = pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)
    all_ascii = bool(ascii_mask.all())  # nearly always: no copy of the texts, no lookup of owners
    ascii_idx = np.flatnonzero(ascii_mask)
    from .score import _compiled_kernels  # numba is optional

    kernels = _compiled_kernels(len(texts))
    if kernels is not None:  # one pass over the bytes (_kernels.ascii_words), the same words
        owner, word_offsets, chars = kernels.ascii_words(*kernels.string_bytes(texts), ascii_idx)
        words = pa.StringArray.from_buffers(len(owner), pa.py_buffer(word_offsets), pa.py_buffer(chars))
        keep = pc.invert(pc.is_in(words, value_set=pa.array(sorted(english_stop_words()))))
    else:
        # utf8_lower, not ascii_lower: pyarrow 26's ascii_lower misreads a string array whose
        # offsets do not start at 0 (a cast of a slice, as term_counts' chunks are).
        runs = pc.split_pattern_regex(pc.utf8_lower(texts if all_ascii else texts.take(pa.array(ascii_idx))),
                                      pattern="[^a-z0-9_]+")
        words = pc.list_flatten(runs)
        owner = pc.list_parent_indices(runs).to_numpy()
        if not all_ascii:
            owner = ascii_idx[owner]
        keep = pc.and_(pc.match_substring_regex(words, pattern="^[a-z][a-z0-9]+$"),
                       pc.invert(pc.is_in(words, value_set=pa.array(sorted(english_stop_words())))))
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
