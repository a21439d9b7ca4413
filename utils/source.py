"""Show the source of the code a chapter teaches, straight from `utils`.

One source of truth: the book shows the code that the tests check.
"""

import inspect

from IPython.display import Markdown


def show_source(obj) -> Markdown:
    """Return the syntax-highlighted source of a function, class or module for display.

    Rendered as a fenced Python block, so it is highlighted in Jupyter and in the built
    book. A decorated function (say, with ``functools.lru_cache``) shows its own code.
    """
    obj = inspect.unwrap(obj)
    if not (
        inspect.isfunction(obj)
        or inspect.isclass(obj)
        or inspect.ismodule(obj)
        or inspect.ismethod(obj)
    ):
        raise ValueError(
            f"show_source needs a function, class, method or module, "
            f"got {type(obj).__name__}"
        )
    module = inspect.getmodule(obj)
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", "?"))
    where = (
        f"# {module.__name__}.{name}" if module and module is not obj else f"# {name}"
    )
    code = inspect.getsource(obj).rstrip()
    return Markdown(f"```python\n{where}\n{code}\n```")
