"""sigreward: significance-weighted length rewards for RL on reasoning LLMs."""

__version__ = "0.1.0"
