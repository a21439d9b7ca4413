"""Small Sphinx fixes for the course site.

sphinx-thebe registers its inline configuration script once per read phase, so a page can
carry it twice, and the second copy throws "Identifier 'THEBE_JS_URL' has already been
declared" in the browser console (sphinx-togglebutton's inline script is doubled the same way).
Here every page keeps one copy of each script.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # inline scripts come with filename None or '': the same script either way
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
