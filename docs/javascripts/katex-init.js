// Renders the math of every page with the KaTeX copy bundled in docs/assets/katex/ (no CDN:
// the site works offline and from file://). pymdownx.arithmatex (generic mode) leaves
// inline math as <span class="arithmatex">\(...\)</span> and display math as
// <div class="arithmatex">\[...\]</div>; each is replaced by KaTeX's HTML in place.
(function () {
  "use strict";

  function strip(tex) {
    tex = tex.trim();
    var pairs = [["\\(", "\\)"], ["\\[", "\\]"], ["$$", "$$"], ["$", "$"]];
    for (var i = 0; i < pairs.length; i++) {
      var open = pairs[i][0], close = pairs[i][1];
      if (tex.startsWith(open) && tex.endsWith(close) && tex.length >= open.length + close.length) {
        return tex.slice(open.length, tex.length - close.length);
      }
    }
    return tex;
  }

  function renderMath(root) {
    if (typeof katex === "undefined") {
      return;
    }
    var nodes = root.querySelectorAll(".arithmatex");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      if (el.getAttribute("data-katex") === "done") {
        continue;
      }
      var display = el.tagName === "DIV";
      katex.render(strip(el.textContent), el, {
        displayMode: display,
        throwOnError: false,
        strict: "ignore",
      });
      el.setAttribute("data-katex", "done");
    }
  }

  if (typeof document$ !== "undefined") {
    // Material for MkDocs: runs on every page load (instant navigation included)
    document$.subscribe(function () { renderMath(document.body); });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderMath(document.body); });
  } else {
    renderMath(document.body);
  }
})();
