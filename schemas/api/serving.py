"""What serving answers to `POST /v1/deployments/{id}/predict` (the KServe v2 passthrough answers as
Triton does; its requests are schemas/inference.py)."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.predictions import Prediction


class ServedPrediction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: UUID = Field(
        description="The deployment's prediction for this image: the same id each time the image is served "
        "again; GET /v1/predictions/{id} finds it once ingest stored it (moments later)."
    )
    model_version_id: UUID = Field(description="The champion that answered.")
    prediction: Prediction
    latency_ms: float = Field(ge=0.0, description="The champion's inference time.")
