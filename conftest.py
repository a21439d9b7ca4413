"""nbval's execution of a chapter becomes the book's execution.

`make test` validates every chapter with nbval, then builds the book. So that each
chapter executes once, this plugin records what nbval's kernel sends while it runs a
chapter, exactly as the book's executor (nbclient) would record it: outputs, execution
counts and the widgets' state. When every cell of a chapter has passed, the executed
notebook goes into the book's execution cache (jupyter-cache, keyed on the code), and
the build that follows takes it from there instead of executing the chapter again. A
chapter with a failing cell is not cached, so the build executes it and fails there too.
"""

import copy
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "_build" / ".jupyter_cache"  # the book's nb_execution_cache_path


def _cache_notebook(notebook, path: Path) -> None:
    from filelock import FileLock  # torch's dependency
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE) + ".lock"):  # two pytest workers share the cache
        get_cache(str(CACHE)).cache_notebook_bundle(
            CacheBundleIn(notebook, str(path), data={"executed_by": "nbval"}),
            check_validity=False,
            overwrite=True,
        )


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("nbval"):
        return
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete
    from nbval.kernel import RunningKernel
    from nbval.plugin import IPyNbCell, IPyNbFile

    def execute_cell_input(self, cell_input, allow_stdin=None):
        # as nbclient executes a cell: stored in the history, so that execution
        # counts number the cells as in a normal run (nbval's own call does not)
        self.current_msg_id = self.kc.execute(
            cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False
        )
        return self.current_msg_id

    def get_kernel_message(self, timeout=None, stream="iopub"):
        message = get_kernel_message.original(self, timeout, stream)
        recorder, parent = getattr(self, "recorder", None), message["parent_header"]
        if stream == "iopub" and recorder and recorder.cell is not None:
            if parent.get("msg_id") == self.kernel.current_msg_id:
                try:
                    recorder.process_message(message, recorder.cell, recorder.index)
                except CellExecutionComplete:
                    pass
        return message

    def runtest(self):
        if not hasattr(self.parent, "recorder"):  # the chapter's first cell
            notebook = copy.deepcopy(self.parent.nb)  # nbval's own copy stays as read
            self.parent.recorder = NotebookClient(notebook, record_timing=False)
            self.parent.recorder.reset_execution_trackers()
            self.parent.recorder.kc = self.parent.kernel.kc
            self.parent.recorder.passed = 0
        recorder = self.parent.recorder
        notebook = recorder.nb
        cells = self.parent.nb.cells
        recorder.index = next(i for i, c in enumerate(cells) if c is self.cell)
        recorder.cell = notebook.cells[recorder.index]
        recorder.cell.outputs, recorder.cell.execution_count = [], None
        recorder.clear_before_next_output = False  # as nbclient's execute_cell
        try:
            runtest.original(self)
        finally:
            recorder.cell = None
        recorder.passed += 1
        if recorder.passed == sum(c.cell_type == "code" for c in notebook.cells):
            recorder.set_widgets_metadata()
            info = self.parent.kernel.kc.kernel_info(reply=True, timeout=60)
            notebook.metadata.language_info = info["content"]["language_info"]
            _cache_notebook(notebook, Path(str(self.parent.fspath)))

    for cls, method in (
        (RunningKernel, execute_cell_input),
        (IPyNbFile, get_kernel_message),
        (IPyNbCell, runtest),
    ):
        method.original = getattr(cls, method.__name__)
        setattr(cls, method.__name__, method)
