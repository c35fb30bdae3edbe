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
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f'mlops_nb.{_LAZY[name]}'), name)
    raise AttributeError(f"module 'mlops_nb' has no attribute {name!r}")


def __dir__(): return sorted(list(globals()) + list(_LAZY))
