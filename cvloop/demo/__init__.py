"""The demo: small models trained on scikit-learn's bundled digits, and the demo deployment."""
