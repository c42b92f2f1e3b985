"""What the serving tests share: a deployment's prediction, polled while serving loads its model."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx


async def served_prediction(
    serving_url: str, key: str, deployment_id: UUID, png: bytes, *, wait_s: float
) -> dict[str, Any]:
    """The deployment's prediction of `png`; 404 and 503 (not loaded yet) are polled for `wait_s`."""
    url = f"{serving_url}/v1/deployments/{deployment_id}/predict"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=wait_s) as client:
        async with asyncio.timeout(wait_s):
            while True:
                response = await client.post(url, content=png)
                if response.status_code == 200:
                    return response.json()["prediction"]
                assert response.status_code in (404, 503), response.text
                await asyncio.sleep(0.5)
