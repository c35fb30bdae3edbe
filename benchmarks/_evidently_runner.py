"""Helper of bench_drift.py, run in an Evidently 0.7 environment (pandas < 3): time `Report([DataDriftPreset()]).run`.

Usage: python _evidently_runner.py REFERENCE.parquet CURRENT.parquet [--warmup-rows 2000] [--declare-types]
Prints one JSON line: the seconds of one full run (after a warm-up run on the first rows), versions, and each
column's drift method, threshold and value. Without --declare-types Evidently infers the column types from the
DataFrames (as `report.run(df, df)` does); with it, a DataDefinition declares numbers as numerical, strings and
bools as categorical and datetimes as datetime (so no string column is taken for text). Does not import mlops_nb.
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('reference'); ap.add_argument('current')
    ap.add_argument('--warmup-rows', type=int, default=2000, help='rows of the warm-up run (default: 2000; 0 = none)')
    ap.add_argument('--declare-types', action='store_true', help='declare column types with a DataDefinition')
    a = ap.parse_args()
    import numpy, pandas as pd, scipy, evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset
    ref, cur = pd.read_parquet(a.reference), pd.read_parquet(a.current)
    data = lambda df: df
    if a.declare_types:
        from evidently import DataDefinition, Dataset
        kinds = {c: ('datetime' if pd.api.types.is_datetime64_any_dtype(t) else 'categorical' if pd.api.types.is_bool_dtype(t)
                     or not pd.api.types.is_numeric_dtype(t) else 'numerical') for c, t in ref.dtypes.items()}
        dd = DataDefinition(**{f'{k}_columns': [c for c, v in kinds.items() if v == k] for k in ('numerical', 'categorical', 'datetime')})
        data = lambda df: Dataset.from_pandas(df, data_definition=dd)
    if a.warmup_rows: Report([DataDriftPreset()]).run(data(cur.head(a.warmup_rows)), data(ref.head(a.warmup_rows)))
    t = time.perf_counter()
    snap = Report([DataDriftPreset()]).run(data(cur), data(ref))  # Evidently 0.7: run(current_data, reference_data)
    seconds = time.perf_counter() - t
    cols, count = {}, {}
    for m in snap.dict()['metrics']:
        cfg = m['config']
        if cfg['type'].endswith(':ValueDrift'):
            cols[cfg['column']] = dict(method=cfg['method'], threshold=cfg['threshold'], value=float(m['value']))
        elif cfg['type'].endswith(':DriftedColumnsCount'): count = m['value']
    print(json.dumps(dict(seconds=seconds, evidently_version=evidently.__version__, pandas_version=pd.__version__,
                          numpy_version=numpy.__version__, scipy_version=scipy.__version__, columns=cols,
                          drifted_count=count.get('count'), drifted_share=count.get('share'),
                          dataset_drift=bool(count.get('share', 0) >= 0.5))))


if __name__ == '__main__':
    main()
