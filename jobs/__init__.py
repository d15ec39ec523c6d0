"""The one job runtime for every kind of job (train, eval, generate): launch, watch, cancel, resume, queue.

Imports only ``store``; the domain packages (pipeline, training, eval) submit through it.
"""
