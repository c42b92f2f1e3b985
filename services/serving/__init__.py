"""Inference gateway: image -> Triton champion and shadow concurrently -> champion's answer -> event.

app (HTTP routes, start-up) -> auth (API keys) -> router (routing table, model leases) with follower
(`deployments` topic) and models (model version -> loaded Triton model, via model_config) -> predict
(champion and shadow calls, the `predictions` event, via services.common.domain.preprocess (shared with the
reference trainer), triton, postprocess, image_store, services.common.domain.agreement) or passthrough (KServe
v2). routing, postprocess and model_config are pure; triton_onnx_model runs inside Triton, not here.
"""
