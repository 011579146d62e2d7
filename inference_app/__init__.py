"""aitk-nb inference server: a base model plus LoRA adapters behind Gradio and an OpenAI route.

Runs inside the container (or as the local target's replica); it never imports ``aitk_nb``.
Start it with ``python -m inference_app``; see ``settings.py`` for the configuration contract.
"""

__version__ = "0.1.0"
