// Loaded after require.js and before the ipywidgets HTML manager (see _config.yml).
(function () {
  // 1. The manager finds its fonts next to its own module URL: point that module name at the
  //    copy this site serves (_static/html-manager/), not at a path beside each page.
  const base = new URL("html-manager", document.currentScript.src).href;
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": base } });

  // 2. Widgets typeset their labels with the MathJax 2 API (MathJax.Hub.Queue); the book loads
  //    MathJax 3. Give MathJax 3 that entry point before the widgets render.
  document.addEventListener("DOMContentLoaded", function () {
    const mathjax = window.MathJax;
    if (mathjax && !mathjax.Hub) {
      mathjax.Hub = {
        Queue: function (command) {
          const element = Array.isArray(command) ? command[2] : undefined;
          const ready = mathjax.startup && mathjax.startup.promise ? mathjax.startup.promise : Promise.resolve();
          ready.then(function () {
            if (mathjax.typesetPromise) return mathjax.typesetPromise(element ? [element] : undefined);
          });
        },
      };
    }
  });
})();
