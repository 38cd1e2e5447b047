"""The GUI entry point: one QApplication, one qasync event loop, the main window, and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import qasync
from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtWidgets import QApplication, QMessageBox

from crm_desktop import __version__
from crm_desktop.app.api_port import port_env_set, port_from_env
from crm_desktop.app.errors import StoreConfigError, VaultError
from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.accessibility import AccessibleNames, install_accessible_names
from crm_desktop.ui.columns import APPLICATION, ORGANISATION
from crm_desktop.ui.main_window import DISPLAY_NAME, MainWindow
from crm_desktop.ui.theme import app_icon, apply_theme, resolve_theme, stylesheet
from crm_desktop.ui.welcome import offer_welcome

if TYPE_CHECKING:
    # The local API (FastAPI, uvicorn: a second of a cold start) is imported once the window is up, in
    # _until_closed, never before the first paint.
    from crm_desktop.api.server import LocalApiServer

logger = logging.getLogger(__name__)

#: Exit code when the workspace cannot be opened (the CLI's "usage or configuration error").
EXIT_CANNOT_START = 2


def configure_application(app: QApplication) -> None:
    """Name the app (QSettings and the desktop use these), and give it its icon and stylesheet."""
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QCoreApplication.setApplicationVersion(__version__)
    QApplication.setApplicationDisplayName(DISPLAY_NAME)
    QApplication.setDesktopFileName(APPLICATION)
    app.setWindowIcon(app_icon())
    app.setStyleSheet(stylesheet())
    if app.findChild(AccessibleNames) is None:
        install_accessible_names(app)


#: How long the app waits, once its window closed, for cancelled tasks (a sync, a sign-in) to wind down. A clean-up
#: still waiting on a CRM by then is cancelled again, and gets LAST_CALL_SECONDS more: closing the app never waits
#: more than five seconds on the network.
DRAIN_SECONDS = 4.0
#: How long tasks cancelled a second time, once the loop stopped, get to end before the loop closes without them.
LAST_CALL_SECONDS = 1.0


def local_api_port(workspace: Workspace) -> int | None:
    """Where the app serves its local API: ``CRM_DESKTOP_API_PORT`` when set, else Settings (``None``: off)."""
    if port_env_set():
        return port_from_env()
    preferences = workspace.preferences.get()
    return preferences.local_api_port if preferences.local_api_enabled else None


def apply_preferred_theme(app: QApplication, workspace: Workspace) -> None:
    """Dress the app in the theme Settings chose (the system's light or dark mode, unless overridden)."""
    apply_theme(app, resolve_theme(workspace.preferences.get().theme.value))


#: How long the local API waits for the window's first paint before it starts anyway (a window that never paints).
FIRST_PAINT_WAIT_SECONDS = 2.0


class _FirstPaint(QObject):
    """Calls ``painted`` when the window it watches first paints."""

    def __init__(self, painted: Callable[[], object]) -> None:
        super().__init__()
        self._painted = painted

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self._painted()
        return False


async def _until_closed(window: MainWindow, workspace: Workspace) -> None:
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    painted = asyncio.Event()
    window.closed.connect(painted.set)  # closed before it painted: nothing to wait for
    first_paint = _FirstPaint(painted.set)
    window.installEventFilter(first_paint)
    window.show()
    offer_welcome(window)  # a first run: try the demo CRMs or connect one
    # Importing the local API (FastAPI, uvicorn) takes a second on a busy machine: the window paints first.
    with contextlib.suppress(TimeoutError):  # asyncio.timeout, as wait_for may swallow a cancel on Python 3.11
        async with asyncio.timeout(FIRST_PAINT_WAIT_SECONDS):
            await painted.wait()
    window.removeEventFilter(first_paint)
    # A window closed already is quitting: its clean-ups get the loop, no API is started to stop again.
    port = None if closed.is_set() else local_api_port(workspace)
    api: LocalApiServer | None = None
    if port is not None:
        from crm_desktop.api.server import start_local_api

        api = start_local_api(workspace, port)
    restarting: list[asyncio.Task[None]] = []

    async def restart_api() -> None:
        nonlocal api
        port = local_api_port(workspace)
        if port is None:
            if api is not None:
                await api.stop()
            api = None
            logger.info("local API turned off")
            return
        from crm_desktop.api.server import LocalApiServer

        old = api
        if old is not None and old.port == port:
            await old.stop()  # the same port: the new server needs it free
            old = None
        moved = LocalApiServer(workspace, port)
        try:
            await moved.start()
        except Exception as exc:  # the port was taken since Settings checked it, or the keyring refused
            await moved.stop()
            logger.warning("the local API could not start on port %s: %s", port, exc)
            # The API keeps serving where it was (Settings says so again), or is off: the window says which.
            window.desk.local_api_refused(port, exc, old.port if old is not None else None)
            return
        if old is not None:
            await old.stop()
        api = moved
        logger.info("local API moved to port %s", port)

    window.desk.local_api_changed.connect(
        lambda: restarting.append(asyncio.ensure_future(restart_api()))
    )
    try:
        await closed.wait()
    finally:
        if restarting:
            await asyncio.gather(*restarting, return_exceptions=True)
        if api is not None:
            await api.stop()
    await _drain_tasks()


async def _drain_tasks() -> None:
    """Cancel every other task and let them finish while the loop still runs.

    Their clean-up (closing HTTP connections, marking a run as stopped, releasing a sync lock) needs a running
    loop: qasync runs whatever is left after ``run_until_complete`` returns without one.
    """
    try:
        current = asyncio.current_task()
    except RuntimeError:
        return  # the app was told to quit and its loop already stopped: run_gui's clean-up cancels the rest
    pending = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    if not pending:
        return
    for task in pending:
        if not task.cancelling():  # a second cancel would interrupt the clean-up of one the window cancelled
            task.cancel()
    _, stuck = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
    logger.info("stopped %d task(s) at exit%s", len(pending), f"; {len(stuck)} did not stop" if stuck else "")


def _close_on_signals(loop: asyncio.AbstractEventLoop, window: MainWindow) -> list[signal.Signals]:
    """Quit (closing the window and saving its state, even with the app in the tray) on Ctrl+C or a polite kill,
    where the platform allows it.

    The loop's own handler wakes the Qt loop through its self-pipe. A Python-level handler is put beside it: it
    runs with the next Python code of the main thread (a timer, a request to the local API), so a quit asked while
    that pipe's notifier is not listening is not lost. Whichever comes first quits; the other finds it done.
    """
    asked: list[int] = []

    def quit_once(number: int) -> None:
        if asked:
            return
        asked.append(number)
        logger.info("asked to quit by %s", signal.Signals(number).name)
        window.quit()

    def beside_the_loop(number: int, _frame: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the app is already on its way out
            loop.call_soon_threadsafe(quit_once, number)

    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, quit_once, int(number))
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # Windows' loops and non-main threads have no signal handlers
        signal.signal(number, beside_the_loop)
        installed.append(number)
    return installed


def _finish_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running on the loop, wait for it to stop, and close the loop."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=LAST_CALL_SECONDS))
        for task in pending:
            if task.done() and not task.cancelled() and isinstance(task.exception(), Exception):
                logger.error("task %s failed while shutting down: %s", task.get_name(),
                             type(task.exception()).__name__)
        logger.info("cancelled %d task(s) still running at exit", len(pending))
        if stuck:
            logger.warning("left %d task(s) that would not stop: %s", len(stuck),
                           ", ".join(sorted(task.get_name() for task in stuck)))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def run_gui(workspace_factory: Callable[[], Workspace], argv: Sequence[str]) -> int:
    """Open the desktop app on the workspace ``workspace_factory`` gives, and run it until its window closes.

    This is the only place that creates the qasync loop. On the way out, tasks still running are cancelled,
    the loop is closed and the workspace is closed.

    Args:
        workspace_factory: opens the workspace (called once the QApplication exists, so errors can be shown).
        argv: the command line for Qt (the program name, and any Qt options).

    Returns:
        0 when the window was closed, 2 when the workspace could not be opened.
    """
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv))
    configure_application(app)
    try:
        workspace = workspace_factory()
    except (StoreConfigError, VaultError, OSError) as exc:
        logger.error("cannot open the workspace: %s", exc)
        QMessageBox.critical(None, f"{DISPLAY_NAME} cannot start", str(exc))
        return EXIT_CANNOT_START
    # A desktop switching to dark mode (or back) while the app runs is followed by the desk's theme follower.
    apply_preferred_theme(app, workspace)

    # The window, not Qt's last-window rule, ends the run, so the loop stops only after the close was handled.
    quit_on_last_window = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window: MainWindow | None = None
    handled_signals: list[signal.Signals] = []
    try:
        window = MainWindow(workspace)
        handled_signals = _close_on_signals(loop, window)
        main = loop.create_task(_until_closed(window, workspace), name="main window")
        try:
            loop.run_until_complete(main)
        except RuntimeError:
            if main.done():
                raise
            # Something called QApplication.quit() while the window was open: close it so its state is saved,
            # and run the loop again so the window's tasks wind down on a running loop.
            logger.info("the app was asked to quit with its window open")
            window.quit()
            loop.run_until_complete(main)
    finally:
        for number in handled_signals:
            loop.remove_signal_handler(number)
        _finish_loop(loop)
        asyncio.set_event_loop(None)
        if window is not None:
            window.deleteLater()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        workspace.close()
        app.setQuitOnLastWindowClosed(quit_on_last_window)
        logger.info("GUI closed")
    return 0
