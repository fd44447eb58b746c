"""modelscan-bd: a backdoor scanner for models from the Hugging Face Hub."""
__version__ = "0.1.0"
