"""Drift detector Lambda: captured traffic vs. the training baseline (see handler.py).

Modules: ``rules`` (thresholds and alarm rules, shared with the Pulumi alarms and local mode),
``capture`` (list/parse capture files), ``analysis`` (metrics, PSI, verdict), ``detector`` (one
run over S3), ``publish`` (EMF metrics), ``settings`` (environment), ``package`` (deployment
zip and the numpy/Pillow layer).
"""
