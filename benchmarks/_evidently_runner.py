"""Helper of bench_drift.py, run in an Evidently 0.7 environment (pandas < 3): time `Report([DataDriftPreset()]).run`.

Usage: python _evidently_runner.py REFERENCE.parquet CURRENT.parquet [--warmup-rows 2000] [--drop COLUMN ...]
Prints one JSON line: the seconds of one full run (after a warm-up run on the first rows), versions, and each
column's drift method, threshold and value. Column types are inferred by Evidently from the DataFrames, as
`report.run(df, df)` does. Does not import mlops_nb.
"""
import argparse
import json
import time


def parse_snapshot(snap) -> tuple[dict, dict]:
    "Each column's drift method, threshold and value, and the drifted-columns count, from a DataDriftPreset run."
    cols, count = {}, {}
    for m in snap.dict()['metrics']:
        cfg = m['config']
        if cfg['type'].endswith(':ValueDrift'):
            cols[cfg['column']] = dict(method=cfg['method'], threshold=cfg['threshold'], value=float(m['value']))
        elif cfg['type'].endswith(':DriftedColumnsCount'): count = m['value']
    return cols, count


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('reference'); ap.add_argument('current')
    ap.add_argument('--warmup-rows', type=int, default=2000, help='rows of the warm-up run (default: 2000; 0 = none)')
    ap.add_argument('--drop', nargs='*', default=[], help='columns to leave out (dropped after reading, before timing)')
    a = ap.parse_args()
    import numpy, pandas as pd, scipy, evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset
    ref, cur = pd.read_parquet(a.reference), pd.read_parquet(a.current)
    ref, cur = ref.drop(columns=a.drop), cur.drop(columns=a.drop)
    if a.warmup_rows: Report([DataDriftPreset()]).run(cur.head(a.warmup_rows), ref.head(a.warmup_rows))
    t = time.perf_counter()
    snap = Report([DataDriftPreset()]).run(cur, ref)  # Evidently 0.7: run(current_data, reference_data)
    seconds = time.perf_counter() - t
    cols, count = parse_snapshot(snap)
    print(json.dumps(dict(seconds=seconds, evidently_version=evidently.__version__, pandas_version=pd.__version__,
                          numpy_version=numpy.__version__, scipy_version=scipy.__version__, columns=cols,
                          drifted_count=count.get('count'), drifted_share=count.get('share'),
                          dataset_drift=bool(count.get('share', 0) >= 0.5))))


if __name__ == '__main__':
    main()
