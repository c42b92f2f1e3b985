"""Inference gateway: image -> Triton champion and shadow concurrently -> champion's answer -> event."""
