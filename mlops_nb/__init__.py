__version__ = "0.0.1"

# Hand-maintained (the only module not exported from a notebook): the public names, imported lazily so that
# `import mlops_nb` stays light (shap, MLflow, widgets and the analyses load on first use).
_LAZY = {
    'LoopParams': 'core', 'Decision': 'core', 'DecisionLog': 'core', 'Report': 'core', 'ParamError': 'core',
    'apply_decisions': 'core',
    'METRICS': 'scoping', 'evaluate': 'scoping',
    'simulate_ads': 'demo',
    'analyze_imbalance': 'imbalance', 'analyze_label_noise': 'label_noise', 'analyze_drift': 'drift',
    'analyze_staleness': 'staleness', 'analyze_slices': 'slices',
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
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f'mlops_nb.{_LAZY[name]}'), name)
    raise AttributeError(f"module 'mlops_nb' has no attribute {name!r}")


def __dir__(): return sorted(list(globals()) + list(_LAZY))
