"""Notebook-first MLOps loop: error analysis findings become decisions that parameterize the next papermill run

Modules:

- `mlops_nb.batcher`: `LiveModel` follows a registry alias (a promotion or a rollback takes effect without a restart); `Batcher` scores the requests that wait together in one model call and answers each only after its predictions are committed to the prediction log. `mlops_nb.serve` puts them behind `POST /predict`.
- `mlops_nb.cli_deploy`: `add_commands(sub, proj, track)` adds the deployment and serving commands to `mlops-nb`; each parses its arguments, calls one function of `mlops_nb.deploy`, `mlops_nb.scoring` or `mlops_nb.serve`, and prints its result.
- `mlops_nb.deploy`: Register a run's model in the MLflow Model Registry with a model card, promote it to `champion` only when it beats the current champion on the newest labelled window, and roll back when it should not have been.
- `mlops_nb.fast_scoring`: `_fast_scorer(model, features)` returns a function that gives the same positive-class scores as `model.predict_proba` for the loop's own pipelines, precomputed and checked once, or None for any other model. `mlops_nb.scoring` uses it for the small batches of `serve`.
- `mlops_nb.gate`: `model_card` writes, from a run folder alone, what a reviewer needs before trusting a version; `gate` compares a challenger with the champion on one labelled window and says, with both numbers, whether it may replace it. `mlops_nb.deploy` calls both when it registers and promotes a run.
- `mlops_nb.input_checks`: `_checked(dep, df, unknown, unit)` — what `Deployed.check_input` does — collects every problem of a batch (missing and unknown columns, new categories, wrong types, missing ids, times that are no times) into one `InputError`, or returns a checked copy. `mlops_nb.scoring` and `mlops_nb.batcher` (the 422 answers of `serve`) use it.
- `mlops_nb.model_registry`: One registered model per loop project in the MLflow Model Registry: its name, its versions' folders, the lock that serializes changes, the aliases that say what is deployed, the artifacts a deployed version needs, and the history of every promotion and rollback. `mlops_nb.deploy` promotes through it; `mlops_nb.scoring` loads from it.
- `mlops_nb.scoring`: `load_deployed` gives the version an alias points to; `Deployed.check_input` refuses data that does not fit it with one clear message; `score` scores a batch and logs it for monitoring. `mlops_nb.serve` answers HTTP requests with the same checks and the same model.
- `mlops_nb.serve`: `make_app` is a small ASGI app that answers `POST /predict` with the version that answered; `serve` runs it with uvicorn. The version is `mlops_nb.batcher.LiveModel`'s, the checks are `Deployed.check_input`'s (`mlops_nb.scoring`), and requests that arrive together are scored together by `mlops_nb.batcher.Batcher`."""

__version__ = "0.0.1"

from pathlib import Path as _Path

# Hand-maintained (the only module not exported from a notebook): the public names, imported lazily so that
# `import mlops_nb` stays light (shap, MLflow, widgets and the analyses load on first use). Each registered
# analysis's public function (`analyze_imbalance`, a plug-in's own) comes from the registry, not from this list.
_LAZY = {
    'LoopParams': 'params', 'ParamError': 'params', 'Decision': 'decisions', 'DecisionLog': 'decisions',
    'apply_decisions': 'decisions', 'Report': 'reports', 'ANALYSES': 'registry', 'METRICS': 'registry',
    'MODELS': 'registry', 'analysis': 'registry', 'LoopInputs': 'registry',
    'evaluate': 'scoping', 'simulate_ads': 'demo',
    # deploy and serve
    'register_run': 'deploy', 'promote': 'deploy', 'rollback': 'deploy', 'gate': 'gate', 'GateResult': 'gate',
    'model_card': 'gate', 'list_versions': 'model_registry', 'deployment_history': 'model_registry',
    'DeployError': 'model_registry', 'load_deployed': 'scoring', 'Deployed': 'scoring', 'score': 'scoring',
    'make_app': 'serve', 'InputError': 'input_checks',
    # monitoring
    'Profile': 'profile', 'profile_drift': 'profile', 'PredictionLog': 'prediction_log', 'MonitorError': 'prediction_log',
    'estimate_performance': 'estimate', 'reference_profile': 'monitor_batch', 'analyze_batch': 'monitor_batch',
    'MonitorReport': 'monitor_batch', 'monitoring_history': 'monitor_history', 'MonitoringHistory': 'monitor_history',
    # past one machine: profiles that merge, Parquet datasets, the Dask cluster
    'merge_profiles': 'profile', 'open_dataset': 'data', 'profile_dataset': 'datasets', 'dataset_drift': 'datasets',
    'score_dataset': 'score_dataset', 'dask_client': 'cluster', 'run_batch': 'batch', 'DRIFT_INPUTS': 'registry',
    # business and the whole story
    'analyze_business': 'business', 'BusinessReport': 'business', 'run_despair': 'despair',
}


def _analysis_functions() -> dict:
    "Public function name → function, for every registered analysis that declares one."
    from mlops_nb.registry import ANALYSES
    return {a.function.__name__: a.function for a in (ANALYSES[n] for n in ANALYSES) if a.function is not None}


def __getattr__(name):
    import importlib
    if name in _LAZY: return getattr(importlib.import_module(f'mlops_nb.{_LAZY[name]}'), name)
    if name == '__all__': return sorted([*_LAZY, *_analysis_functions()])
    if not name.startswith('_') and not (__path__ and (_Path(__path__[0]) / f'{name}.py').exists()):  # not a submodule
        fns = _analysis_functions()
        if name in fns: return fns[name]
    raise AttributeError(f"module 'mlops_nb' has no attribute {name!r}")


def __dir__(): return sorted(list(globals()) + list(_LAZY) + list(_analysis_functions()))
