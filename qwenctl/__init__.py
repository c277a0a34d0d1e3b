"""qwenctl: run the best Qwen 2.5 model your hardware can.

The package is a library first: ``detect``, ``plan``, ``pull``, ``load_backend`` and
``bench`` do the work; ``qwenctl.cli`` only parses flags, calls one of them and renders.
"""

__version__ = "0.1.0"
