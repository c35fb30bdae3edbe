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
    'register_run': 'deploy', 'promote': 'deploy', 'rollback': 'deploy', 'gate': 'deploy', 'GateResult': 'deploy',
    'model_card': 'deploy', 'list_versions': 'deploy', 'deployment_history': 'deploy', 'DeployError': 'deploy',
    'load_deployed': 'serve', 'Deployed': 'serve', 'score': 'serve', 'make_app': 'serve', 'InputError': 'serve',
    # monitoring
    'Profile': 'profile', 'profile_drift': 'profile', 'PredictionLog': 'prediction_log', 'MonitorError': 'prediction_log',
    'estimate_performance': 'estimate', 'reference_profile': 'monitor', 'analyze_batch': 'monitor',
    'MonitorReport': 'monitor', 'monitoring_history': 'monitor', 'MonitoringHistory': 'monitor',
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
