"""UltraVQA-Ray: multi-dimension video quality assessment with Analytic Score Optimization on Ray."""

__version__ = "0.1.0"
