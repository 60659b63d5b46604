"""Node positions for the site graph: a radial crawl map.

The home page sits in the centre, each ring is one click deeper, and every site section owns the
same angular sector on every ring, so a section reads as a wedge from the centre outwards (the
"crawl tree" view SEO tools draw). Pages no link reaches (orphans) sit on an outer ring. It is O(n
log n) and deterministic, so 20,000 nodes lay out instantly and two reports of one site look alike;
a force layout in the browser would take seconds at that size and move on every open.
"""

from __future__ import annotations

import numpy as np

__all__ = ["radial_layout"]


def radial_layout(depth: np.ndarray, section: np.ndarray, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y for each node from its click depth (negative: unreachable), its section index and a
    key that orders nodes inside a section's wedge (the URL, so sibling pages sit together)."""
    n = len(depth)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    depth = np.asarray(depth, dtype=float)
    reachable = depth >= 0
    outer = (depth[reachable].max() if reachable.any() else 0) + 1.5
    radius = np.where(reachable, depth, outer)
    sections, section_idx = np.unique(np.asarray(section), return_inverse=True)
    # Wedges proportional to the square root of a section's size: small sections stay visible.
    sizes = np.sqrt(np.bincount(section_idx, minlength=len(sections)).astype(float))
    widths = 2 * np.pi * sizes / sizes.sum()
    starts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    angle = np.zeros(n)
    ring_keys = np.round(radius, 3)
    for ring in np.unique(ring_keys):
        on_ring = np.flatnonzero(ring_keys == ring)
        for s in np.unique(section_idx[on_ring]):
            members = on_ring[section_idx[on_ring] == s]
            members = members[np.argsort(order_key[members], kind="stable")]
            # Spread the members over the middle 90% of the wedge, leaving gaps between wedges.
            slots = (np.arange(len(members)) + 0.5) / len(members)
            angle[members] = starts[s] + widths[s] * (0.05 + 0.9 * slots)
    return radius * np.cos(angle), radius * np.sin(angle)
