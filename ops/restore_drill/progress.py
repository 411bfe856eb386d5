"""The drill's terminal output: one line per step with a spinner while it runs and its elapsed time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class RichReporter:
    """A `Reporter` drawing a rich progress display; use it as a context manager around the drill."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._current: tuple[TaskID, str] | None = None

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        task = self._progress.add_task(escape(title), total=None)
        self._current = (task, title)
        try:
            yield
        except BaseException:
            self._finish(task, f"[red]✗ {escape(title)}")
            raise
        else:
            self._finish(task, f"[green]✓[/green] {escape(title)}")
        finally:
            self._current = None

    def _finish(self, task: TaskID, description: str) -> None:
        self._progress.update(task, description=description, total=1, completed=1)
        self._progress.stop_task(task)

    def status(self, message: str) -> None:
        """Show the current long-running operation's state next to its step."""
        if self._current is not None:
            task, title = self._current
            self._progress.update(task, description=f"{escape(title)} [dim]({escape(message)})")

    def note(self, message: str) -> None:
        self._progress.console.print(f"    {escape(message)}")
