"""The aggregators: one module (or package) per model, each a plug-in of the registry.

Aggregators import only the layers below them (``wsagg.base``, ``wsagg.labels``,
``wsagg.exceptions``, ``wsagg._validation``, ``wsagg.distributed``'s public API) and never
each other; ``tests/test_architecture.py`` enforces it.
"""
