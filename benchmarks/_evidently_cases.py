"""Helper of bench_drift.py part c, run in an Evidently 0.7 environment (pandas < 3): many small drift reports in one process.

Usage: python _evidently_cases.py DIR — for every pair DIR/<case>.ref.parquet and DIR/<case>.cur.parquet runs
`Report([DataDriftPreset()]).run(current, reference)` with Evidently's defaults (column types inferred) and prints one
JSON line: {case: {columns: {column: {method, threshold, value}}, dataset_drift}} and the versions. Does not import
mlops_nb.
"""
import json
import sys
from pathlib import Path


def main():
    d = Path(sys.argv[1])
    import pandas as pd, evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset
    from _evidently_runner import parse_snapshot  # the same folder
    out = {}
    for ref_path in sorted(d.glob('*.ref.parquet')):
        case = ref_path.name[:-len('.ref.parquet')]
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(d / f'{case}.cur.parquet')
        snap = Report([DataDriftPreset()]).run(cur, ref)  # Evidently 0.7: run(current_data, reference_data)
        cols, count = parse_snapshot(snap)
        out[case] = dict(columns=cols, dataset_drift=bool(count.get('share', 0) >= 0.5))
    print(json.dumps(dict(cases=out, evidently_version=evidently.__version__, pandas_version=pd.__version__)))


if __name__ == '__main__':
    main()
