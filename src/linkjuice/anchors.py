"""Anchor text vocabulary: generic anchors that say nothing about their target.

Used by the juice model (a generic anchor passes less) and by the audit (generic-anchor findings).
Lists cover English, German, French and Spanish; comparisons are case- and punctuation-insensitive.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["GENERIC_ANCHORS", "normalize_anchor", "normalize_anchors", "is_generic_anchor", "is_generic_normalized",
           "generic_mask", "generic_normalized_mask"]

GENERIC_ANCHORS: dict[str, frozenset[str]] = {
    "en": frozenset({
        "click here", "click", "here", "read more", "more", "learn more", "find out more", "see more",
        "continue", "continue reading", "this", "this page", "this link", "link", "website", "this site",
        "go", "go here", "details", "more info", "more information", "info", "view", "view more",
        "see here", "check it out", "download", "read", "page", "article", "source", "visit",
        "click this", "tap here", "open", "next", "previous", "read the full article", "keep reading",
    }),
    "de": frozenset({
        "hier", "hier klicken", "klicken sie hier", "mehr", "weiterlesen", "mehr lesen", "mehr erfahren",
        "mehr dazu", "mehr infos", "mehr informationen", "details", "link", "diese seite", "webseite",
        "zum artikel", "weiter", "hier lesen", "jetzt lesen", "siehe hier", "hier entlang", "mehr anzeigen",
    }),
    "fr": frozenset({
        "cliquez ici", "ici", "en savoir plus", "lire la suite", "plus", "lire plus", "voir plus",
        "plus d'infos", "plus d'informations", "suite", "lien", "cette page", "site", "continuer",
        "details", "voir", "voir ici", "lire l'article", "découvrir", "decouvrir", "cliquer ici",
    }),
    "es": frozenset({
        "haz clic aquí", "haga clic aquí", "clic aquí", "click aquí", "aquí", "leer más", "más",
        "ver más", "saber más", "más información", "más info", "seguir leyendo", "continuar", "enlace",
        "esta página", "sitio web", "detalles", "ver", "leer", "pincha aquí", "descubre más",
    }),
}

_ALL_GENERIC = frozenset().union(*GENERIC_ANCHORS.values())
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize_anchor(text: str) -> str:
    """Lower-case, accents kept, punctuation and arrows removed, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text).lower()
    return " ".join(_PUNCT.sub(" ", text).split())


_ALL_GENERIC_NORMALIZED = frozenset(normalize_anchor(a) for a in _ALL_GENERIC)
_GENERIC_ARRAY = pa.array(sorted(_ALL_GENERIC_NORMALIZED), pa.string())


def is_generic_anchor(text: str | None) -> bool:
    """True for anchors like "click here", "read more", "weiterlesen", "en savoir plus"."""
    if not text:
        return False
    return normalize_anchor(text) in _ALL_GENERIC_NORMALIZED


def normalize_anchors(anchors: pa.Array | pa.ChunkedArray) -> pa.Array:
    """normalize_anchor of many anchors (NULL: ""). ASCII anchors are normalised by one numba
    pass over their bytes, or by Arrow's kernels (for ASCII, normalize_anchor is: lower-case, each
    run of characters other than [a-z0-9] one space, trimmed); the others one by one."""
    if isinstance(anchors, pa.ChunkedArray):
        anchors = anchors.combine_chunks()
    anchors = pc.fill_null(anchors.cast(pa.string()), "")
    from .score import _compiled_kernels  # numba is optional

    kernels = _compiled_kernels(len(anchors))
    if kernels is not None:  # one pass over the bytes (_kernels.ascii_normalized), the same texts
        offsets, chars = kernels.ascii_normalized(*kernels.string_bytes(anchors))
        normalized = pa.StringArray.from_buffers(len(anchors), pa.py_buffer(offsets), pa.py_buffer(chars))
    else:  # (RE2 sets up each text: the kernel's one pass is several times faster)
        normalized = pc.ascii_trim(pc.replace_substring_regex(pc.utf8_lower(anchors), pattern="[^a-z0-9]+",
                                                              replacement=" "), characters=" ")
    other = pc.invert(pc.string_is_ascii(anchors))
    if pc.any(other).as_py():
        fixed = [normalize_anchor(a) for a in anchors.filter(other).to_pylist()]
        normalized = pc.replace_with_mask(normalized, other, pa.array(fixed, pa.string()))
    return normalized


def generic_mask(anchors: pa.Array) -> np.ndarray:
    """is_generic_anchor of many anchors."""
    return generic_normalized_mask(normalize_anchors(anchors))


def generic_normalized_mask(normalized: pa.Array) -> np.ndarray:
    """is_generic_normalized of many anchors that normalize_anchors has already normalised."""
    return pc.is_in(normalized, value_set=_GENERIC_ARRAY).to_numpy(zero_copy_only=False)


def is_generic_normalized(normalized: str) -> bool:
    """is_generic_anchor for text that normalize_anchor has already normalised."""
    return normalized in _ALL_GENERIC_NORMALIZED
