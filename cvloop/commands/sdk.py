"""What the SDK-backed commands share: a client from the settings, SDK errors as clean CLI errors,
progress bars for uploads and waits."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cvloop.sdk import Client, CvloopError, Job, JobTimeout, UploadedFile
from schemas.vocabulary import UploadKind

T = TypeVar("T")


def client_from(ctx: click.Context) -> Client:
    client = Client()  # the SDK's settings, from the environment
    ctx.call_on_close(client.close)
    return client


def with_client(command: Callable[..., T]) -> Callable[..., T]:
    """Pass the command a Client as its first argument, and show SDK errors as one line, exit 1."""

    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> T:
        try:
            return command(client_from(ctx), *args, **kwargs)
        except (CvloopError, JobTimeout) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _bars() -> Any:
    """Bars go to stderr, so what a command prints on stdout (a key, an id) stays scriptable."""
    return click.get_text_stream("stderr")


def progress_bar(length: int, label: str) -> Any:
    return click.progressbar(length=length, label=label, file=_bars())


def upload_with_bar(client: Client, path: Path, kind: UploadKind) -> UploadedFile:
    with progress_bar(path.stat().st_size, f"uploading {path.name}") as bar:
        return client.upload(path, kind, progress=bar.update)


def wait_with_bar(job: Job, timeout_s: float, poll_s: float) -> Job:
    """Wait for the job's latest run; the bar fills with the time allowed and shows the status."""
    started = time.monotonic()
    with click.progressbar(
        length=max(1, round(timeout_s)),
        label=f"job {job.id}",
        show_eta=False,
        show_percent=False,
        item_show_func=lambda status: status,
        file=_bars(),
    ) as bar:

        def on_poll(current: Job) -> None:
            elapsed = min(bar.length, round(time.monotonic() - started))
            bar.update(max(0, elapsed - bar.pos), current.status)

        job.wait(timeout_s=timeout_s, poll_s=poll_s, on_poll=on_poll)
        bar.update(bar.length - bar.pos, job.status)
    return job
