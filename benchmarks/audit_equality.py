"""The audit's results before and after a change, compared: findings, items, juice flow and summary.

    python benchmarks/audit_equality.py build STORES          # crawl the test sites into STORES/*.duckdb
    python benchmarks/audit_equality.py snapshot STORES OUT   # audit a copy of each store, save to OUT
    python benchmarks/audit_equality.py compare OLD NEW       # exit 1 on any difference

Add other stores (a generated 100k store, say) to STORES by copying them there. Each store is
audited with the default thresholds and with the test suite's (tests/test_audit.py), on a copy,
so the stores themselves stay as built. Findings and items are compared row by row in their
stored order (finding_id order; items by finding, source URL, link order): codes, URLs, anchors,
counts and texts exactly, juice to a relative 1e-9; a text column held as a categorical counts as
the same text column.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' site kits

from linkjuice.audit import AuditThresholds  # noqa: E402
from linkjuice.pipeline import run_audit  # noqa: E402

VARIANTS = {"default": AuditThresholds(),
            "tests": AuditThresholds(max_links=17, important_percentile=75, max_depth=1, min_inlinks=3)}


def build(stores: Path) -> None:
    from linkjuice.config import CrawlConfig
    from linkjuice.demo import serve_folder
    from linkjuice.pipeline import crawl_site
    from linkjuice.store import Store
    from tests import test_audit, test_render
    from tests.sitekit import serve

    stores.mkdir(parents=True, exist_ok=True)
    holder: list[str] = []
    with serve(test_audit._routes(holder)) as server:
        holder.append(server.origin)
        o = server.origin
        crawl_site(CrawlConfig(start_url=server.url("/"), **test_audit.CRAWL), stores / "site.duckdb",
                   model=test_audit.MODEL)
        with Store(stores / "site.duckdb") as store:
            store.con.executemany("INSERT INTO imported_urls VALUES (?, ?)",
                                  [[o + "/imported-only/", "analytics"], ["https://other.example/x", "analytics"],
                                   [o + "/a/", "analytics"], [o + "/ünïcode/ä", "analytics"]])
            store.con.executemany("INSERT INTO gsc VALUES (?, ?, ?, NULL, NULL)",
                                  [[o + "/m/0/", 500, 10000], [o + "/a/", 10, 300], [o + "/nowhere/", 3, 9]])
            store.con.executemany("INSERT INTO priorities VALUES (?, ?)", [[o + "/M/1", 2.0], [o + "/", None]])
        crawl_site(CrawlConfig(start_url=server.url("/"), max_pages=6, **test_audit.CRAWL), stores / "partial.duckdb",
                   model=test_audit.MODEL)
    holder = []
    with serve(test_render._routes(holder, sitemap=True)) as server:
        holder.append(server.origin)
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, render_pages=2, **test_render.CRAWL),
                   stores / "rendered.duckdb", model=test_render.MODEL)
    with serve_folder() as origin:
        crawl_site(CrawlConfig(start_url=origin + "/"), stores / "demo.duckdb")


def snapshot(stores: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for db in sorted(stores.glob("*.duckdb")):
        for name, thresholds in VARIANTS.items():
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / db.name
                shutil.copyfile(db, copy)
                result = run_audit(copy, thresholds)
                findings, items = result.findings, result.items  # read from the copy while it exists
            base = out / f"{db.stem}.{name}"
            findings.to_parquet(f"{base}.findings.parquet")
            items.to_parquet(f"{base}.items.parquet")
            result.juice_flow.to_parquet(f"{base}.flow.parquet")
            summary = {k: v for k, v in result.summary.items() if k != "audited_at"}
            summary["dtypes"] = {name: {c: str(t) for c, t in frame.dtypes.items()} for name, frame in
                                 (("findings", findings), ("items", items), ("flow", result.juice_flow))}
            Path(f"{base}.summary.json").write_text(json.dumps(summary, sort_keys=True, default=str))
            print(f"{base.name}: {len(findings)} findings, {len(items)} items", flush=True)


def _same_frame(name: str, old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    if list(old.columns) != list(new.columns):
        return [f"{name}: columns {list(old.columns)} != {list(new.columns)}"]
    if len(old) != len(new):
        return [f"{name}: {len(old)} rows != {len(new)} rows"]
    errors = []
    for col in old.columns:
        a, b = old[col], new[col]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            x, y = a.to_numpy(np.float64, na_value=np.nan), b.to_numpy(np.float64, na_value=np.nan)
            bad = ~(np.isclose(x, y, rtol=1e-9, atol=1e-15) | (np.isnan(x) & np.isnan(y)))
        else:
            x, y = a.astype(object).to_numpy(), b.astype(object).to_numpy()
            xn, yn = pd.isna(a).to_numpy(), pd.isna(b).to_numpy()
            bad = (xn != yn) | (~xn & ~yn & np.array([str(p) != str(q) for p, q in zip(x, y)], bool))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            errors.append(f"{name}.{col}: {int(bad.sum())} rows differ, first row {i}: {x[i]!r} != {y[i]!r}")
    return errors


def compare(old: Path, new: Path) -> int:
    errors: list[str] = []
    names = sorted(p.name for p in old.iterdir())
    if names != sorted(p.name for p in new.iterdir()):
        errors.append(f"different files: {names} vs {sorted(p.name for p in new.iterdir())}")
    for name in names:
        if name.endswith(".parquet") and (new / name).exists():
            errors += _same_frame(name, pd.read_parquet(old / name), pd.read_parquet(new / name))
        elif name.endswith(".json") and (new / name).exists():
            a, b = json.loads((old / name).read_text()), json.loads((new / name).read_text())
            for key in sorted(set(a) | set(b)):
                x, y = a.get(key), b.get(key)
                if key == "dtypes":  # a text column held as a categorical has the same values
                    x, y = (json.loads(json.dumps(d).replace('"category"', '"str"')) for d in (x, y))
                same = (np.isclose(x, y, rtol=1e-9, atol=1e-15) if isinstance(x, float) and isinstance(y, float)
                        else x == y)
                if not same:
                    errors.append(f"{name}: {key}: {x!r} != {y!r}")
    print("\n".join(errors) if errors else f"identical: {len(names)} files")
    return 1 if errors else 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "build":
        build(Path(args[0]))
    elif command == "snapshot":
        snapshot(Path(args[0]), Path(args[1]))
    elif command == "compare":
        sys.exit(compare(Path(args[0]), Path(args[1])))
    else:
        sys.exit(__doc__)
