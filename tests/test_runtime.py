"""What a learner outside this repository runs, in a clean virtual environment that holds
only Binder's runtime packages (the pip pins of environment.yml): a downloaded chapter, whose first
cell installs the course package, and the chapters in a live JupyterLab, as on Binder, with
a slider moved and its figure redrawn by the kernel.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from install_cell import install_requirement  # noqa: E402
from test_book import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JUPYTERLAB = "jupyterlab==4.6.6"  # as `make lab`
CHAPTERS = sorted(p.name for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
pytestmark = pytest.mark.browser


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-compile", *args],
        check=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> dict:
    """A clean venv with the runtime packages, and a copy of the course's source.

    PyTorch's CPU index line is left out: pip finds torch's CPU build where it is
    configured to look (a wheel on this machine, PIP_EXTRA_INDEX_URL in the workflow).
    """
    base = tmp_path_factory.mktemp("runtime")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True)
    python = base / "venv" / "bin" / "python"
    lines = (ROOT / "environment.yml").read_text().splitlines()
    pins = base / "runtime.txt"
    pins.write_text("".join(x.split("- ")[1] + "\n" for x in lines if "==" in x))
    _pip(python, "-r", str(pins))
    source = base / "source"  # what pip would fetch from the release tag
    source.mkdir()
    shutil.copytree(
        ROOT / "utils", source / "utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source)
    env = dict(os.environ, PATH=f"{python.parent}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    return {"base": base, "python": python, "pins": pins, "source": source, "env": env}


def _outside_the_repository(runtime: dict, name: str, cells) -> Path:
    """A notebook of `cells` in a folder of its own, its install cell (the first)
    pointing at the local copy of the source instead of the release tag (no network)."""
    notebook = nbformat.v4.new_notebook(cells=list(cells))
    requirement = install_requirement()
    first = notebook.cells[0]
    assert requirement in first.source
    first.source = first.source.replace(
        requirement, f"attention-step-by-step @ {runtime['source'].as_uri()}"
    )
    folder = runtime["base"] / "learner"
    folder.mkdir(exist_ok=True)
    nbformat.write(notebook, folder / name)
    return folder / name


def _execute(runtime: dict, path: Path) -> subprocess.CompletedProcess:
    """Run every cell of the notebook at `path` in the clean venv's kernel, in place."""
    script = (
        "import sys, nbformat, nbclient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "try:\n"
        "    nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',\n"
        "        resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "finally:\n"
        "    nbformat.write(nb, sys.argv[1])\n"
    )
    return subprocess.run(
        [str(runtime["python"]), "-c", script, str(path), str(path.parent)],
        env=runtime["env"] | {"PIP_CONSTRAINT": str(runtime["pins"])},
        capture_output=True,
        text=True,
        timeout=900,
    )


def _cells(name: str) -> list:
    return nbformat.read(ROOT / "chapters" / name, as_version=4).cells


def test_a_downloaded_chapter_installs_the_course_and_runs(runtime):
    """Chapter 0 alone, in the clean venv: cell 0 installs `utils`, then every cell runs."""
    path = _outside_the_repository(runtime, "chapter0.ipynb", _cells(CHAPTERS[0]))
    python, env = runtime["python"], runtime["env"]
    missing = subprocess.run(
        [str(python), "-c", "import utils"], env=env, cwd=path.parent
    )
    assert missing.returncode != 0, "the clean venv already has the course package"
    run = _execute(runtime, path)
    assert run.returncode == 0, run.stderr[-3000:]
    import_check = subprocess.run(
        [str(python), "-c", "import utils; print(utils.__file__)"],
        env=env,
        cwd=path.parent,
        capture_output=True,
        text=True,
    )
    assert "site-packages" in import_check.stdout, "utils was not installed by cell 0"


def _setup_cells(cells) -> list:
    """A chapter's set-up: the code cells in a row after its install cell and title."""
    rest = cells[1:]
    first = next(i for i, c in enumerate(rest) if c.cell_type == "code")
    setup = []
    for cell in rest[first:]:
        if cell.cell_type != "code":
            break
        setup.append(cell)
    return setup


def test_every_chapters_imports_need_only_the_runtime_packages(runtime):
    """Each chapter's install cell and set-up cell (its imports), outside the repository.
    The appendix runs a script of the repository: outside it, it says so."""
    chapters = [c for c in CHAPTERS if not c.startswith("12_")]  # not the appendix
    setup = [cell for name in chapters for cell in _setup_cells(_cells(name))]
    install = _cells(chapters[0])[0]
    path = _outside_the_repository(runtime, "imports.ipynb", [install, *setup])
    run = _execute(runtime, path)
    assert run.returncode == 0, run.stderr[-3000:]

    appendix = _cells("12_data_parallel.ipynb")
    setup = _setup_cells(appendix)
    path = _outside_the_repository(runtime, "appendix.ipynb", [appendix[0], *setup])
    run = _execute(runtime, path)
    assert run.returncode != 0 and "clone the course's repository" in run.stderr


@pytest.fixture(scope="module")
def jupyterlab(runtime):
    """JupyterLab from the runtime venv on localhost, serving the chapters' folder."""
    _pip(runtime["python"], JUPYTERLAB, "-c", str(runtime["pins"]))
    _pip(runtime["python"], "--no-deps", str(runtime["source"]))
    folder = runtime["base"] / "lab"
    shutil.copytree(ROOT / "chapters", folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            str(runtime["python"]),
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.root_dir={folder}",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            "--allow-root",
            "--expose-app-in-browser",
        ],
        env=runtime["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start")
    yield url
    server.terminate()
    server.wait(timeout=30)


STATE = """() => {
  const app = window.jupyterapp;  // undefined until JupyterLab has started
  const panel = app && app.shell && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const code = Array.from(panel.content.model.cells).filter(
      c => c.type === 'code' && c.sharedModel.getSource().trim());
  return {
    path: panel.context.path,
    kernel: panel.sessionContext.session?.kernel?.status ?? 'none',
    run: code.filter(c => c.executionCount !== null).length,
    total: code.length,
    errors: code.flatMap(c => c.outputs.toJSON()).filter(o => o.output_type === 'error')
                .map(o => o.ename + ': ' + o.evalue),
  };
}"""


RUN_ALL = """() => {
  const app = window.jupyterapp;
  app.shell.activateById(app.shell.currentWidget.id);
  return app.commands.execute('notebook:run-all-cells');
}"""


def _wait(page, condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = page.evaluate(STATE)
        except PlaywrightError:  # the page navigated (JupyterLab's ?reset)
            state = None
        if state and condition(state):
            return state
        page.wait_for_timeout(500)
    pytest.fail(f"timed out waiting for {what}: {page.evaluate(STATE)}")


@pytest.mark.parametrize(
    "chapter", ["00_why_attention.ipynb", "05_multi_head_attention.ipynb"]
)
def test_run_all_then_move_a_slider_in_jupyterlab(jupyterlab, chapter):
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # a workspace of its own, reset: only this chapter open, and active
        workspace = Path(chapter).stem
        page.goto(f"{jupyterlab}/lab/workspaces/{workspace}/tree/{chapter}?reset")
        _wait(
            page,
            lambda s: s["path"] == chapter and s["kernel"] == "idle",
            120,
            "the chapter and its kernel",
        )
        page.evaluate(RUN_ALL)
        state = _wait(
            page,
            lambda s: (s["run"] == s["total"] and s["kernel"] == "idle") or s["errors"],
            600,
            "every cell to run",
        )
        assert not state["errors"], state["errors"]

        slider = page.locator(".widget-slider").first
        slider.scroll_into_view_if_needed()
        box = slider.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
        figure = box.locator(".widget-output img").first
        before = figure.get_attribute("src")
        slider.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and figure.get_attribute("src") == before:
            page.wait_for_timeout(250)
        after = figure.get_attribute("src")
        errors = _wait(page, lambda s: s["kernel"] == "idle", 60, "the redraw")[
            "errors"
        ]
        page.screenshot(path=str(ROOT / "_build" / f"jupyterlab_{chapter}.png"))
        browser.close()
    assert before and after != before, "moving the slider did not redraw the figure"
    assert not errors, errors
