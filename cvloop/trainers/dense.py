"""Fine-tuning a dense classifier (Flatten -> (Gemm -> Relu)* -> Gemm) in numpy (pure): the forward pass,
the softmax cross-entropy loss with its gradients by backpropagation, and Adam over shuffled mini-batches.

Layers are (weights (in, out), bias (out,)) as `services.common.domain.onnx_graphs` reads and writes them; the
math keeps the dtype it is given (float32 to train, float64 for the numerical gradient check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating]
Labels = npt.NDArray[np.int64]
Layers = list[tuple[Array, Array]]


def logits(layers: Layers, x: Array) -> Array:
    """Class scores before the softmax for a batch of flattened inputs (batch, features)."""
    hidden = x
    for weights, bias in layers[:-1]:
        hidden = np.maximum(hidden @ weights + bias, 0)
    weights, bias = layers[-1]
    return hidden @ weights + bias


def accuracy(layers: Layers, x: Array, y: Labels) -> float:
    return float(np.mean(np.argmax(logits(layers, x), axis=1) == y)) if len(y) else float("nan")


def loss_and_gradients(
    layers: Layers, x: Array, y: Labels, anchor: Layers | None = None, l2: float = 0.0
) -> tuple[float, Layers]:
    """The mean cross-entropy of the softmax plus l2/2 x the squared distance of the weights (biases
    excluded) from the anchor's (zero without one: plain weight decay; the base model's: L2-SP, which
    keeps a fine-tuned model near where it started), and its gradient for every layer's (weights, bias),
    by backpropagation through the Relu layers."""
    origins = [w for w, _ in anchor] if anchor else [np.zeros_like(w) for w, _ in layers]
    inputs = [x]  # the input of each layer
    for weights, bias in layers[:-1]:
        inputs.append(np.maximum(inputs[-1] @ weights + bias, 0))
    weights, bias = layers[-1]
    z = inputs[-1] @ weights + bias
    z = z - z.max(axis=1, keepdims=True)
    log_probabilities = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    penalty = 0.5 * l2 * sum(float(np.sum((w - o) ** 2)) for (w, _), o in zip(layers, origins, strict=True))
    value = float(-np.mean(log_probabilities[rows, y])) + penalty
    delta = np.exp(log_probabilities)
    delta[rows, y] -= 1
    delta /= len(y)  # d loss / d logits of the mean
    grads: Layers = []
    for n in range(len(layers) - 1, -1, -1):
        weights, _ = layers[n]
        grads.append((inputs[n].T @ delta + l2 * (weights - origins[n]), delta.sum(axis=0)))
        if n:
            delta = (delta @ weights.T) * (inputs[n] > 0)  # back through the Relu that made inputs[n]
    return value, grads[::-1]


@dataclass
class Adam:
    """Adam (Kingma & Ba) with its moment estimates per parameter, bias-corrected."""

    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    steps: int = 0
    _moments: list[tuple[Array, Array]] = field(default_factory=list)

    def step(self, layers: Layers, grads: Layers) -> Layers:
        parameters = [p for layer in layers for p in layer]
        flat_grads = [g for layer in grads for g in layer]
        if not self._moments:
            self._moments = [(np.zeros_like(p), np.zeros_like(p)) for p in parameters]
        self.steps += 1
        correction1, correction2 = 1 - self.beta1**self.steps, 1 - self.beta2**self.steps
        updated = []
        for i, (parameter, grad) in enumerate(zip(parameters, flat_grads, strict=True)):
            m, v = self._moments[i]
            m = self.beta1 * m + (1 - self.beta1) * grad
            v = self.beta2 * v + (1 - self.beta2) * grad * grad
            self._moments[i] = (m, v)
            step = self.learning_rate * (m / correction1) / (np.sqrt(v / correction2) + self.epsilon)
            updated.append((parameter - step).astype(parameter.dtype))
        return [(updated[i], updated[i + 1]) for i in range(0, len(updated), 2)]


def train_epoch(
    layers: Layers,
    x: Array,
    y: Labels,
    optimizer: Adam,
    batch_size: int,
    rng: np.random.Generator,
    anchor: Layers | None = None,
    l2: float = 0.0,
) -> tuple[Layers, float]:
    """One pass over the data in shuffled mini-batches; the new layers and the mean batch loss."""
    order = rng.permutation(len(y))
    losses = []
    for start in range(0, len(y), batch_size):
        batch = order[start : start + batch_size]
        value, grads = loss_and_gradients(layers, x[batch], y[batch], anchor, l2)
        losses.append(value * len(batch))
        layers = optimizer.step(layers, grads)
    return layers, float(sum(losses) / len(y))
