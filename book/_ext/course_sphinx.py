"""Small Sphinx additions for the course site.

- sphinx-thebe registers its inline configuration script once per read phase, so a page
  can carry it twice, and the second copy throws "Identifier 'THEBE_JS_URL' has already
  been declared" in the browser console (sphinx-togglebutton's inline script is doubled
  the same way). Here every page keeps one copy of each script.
- The two editions link each page to its counterpart: the English book sits at the site's
  root and the Chinese one under zh/ (`course_edition`, book/_templates/lang-switch.html).
- The Chinese edition shows the widgets' labels in Chinese (`course_widget_labels`, from
  locales/zh_CN/LC_MESSAGES/widgets.po): the widgets' saved state is the English
  execution's, and only its labels change.
"""

import json

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
COUNTERPART = {"en": ("zh", "zh/", "中文"), "zh": ("en", "../", "English")}


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


def _counterpart(app, pagename, templatename, context, doctree):
    lang, prefix, label = COUNTERPART[app.config.course_edition]
    up = "../" * pagename.count("/")
    context["course_counterpart"] = f"{up}{prefix}{pagename}.html"
    context["course_counterpart_lang"] = "zh-CN" if lang == "zh" else lang
    context["course_counterpart_label"] = app.config.course_switch_label or label


def _translate_widget_labels(app, pagename, templatename, context, doctree):
    labels = app.config.course_widget_labels
    scripts = context.get("script_files") or []
    for i, script in enumerate(scripts):
        attributes = getattr(script, "attributes", {})
        if not labels or attributes.get("type") != WIDGET_STATE:
            continue
        state = json.loads(attributes["body"])
        for model in state["state"].values():
            label = model["state"].get("description")
            if label in labels:
                model["state"]["description"] = labels[label]
        body = json.dumps(state, ensure_ascii=False).replace("</", "<\\/")
        scripts[i] = type(script)(
            script.filename, priority=script.priority, **{**attributes, "body": body}
        )


def setup(app):
    app.add_config_value("course_edition", "en", "html")
    app.add_config_value("course_switch_label", "", "html")
    app.add_config_value("course_widget_labels", {}, "html")
    app.connect("html-page-context", _unique_scripts, priority=900)
    app.connect("html-page-context", _counterpart)
    app.connect("html-page-context", _translate_widget_labels, priority=901)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
