// Drill-down: a link to a check or a cell opens every <details> around it, then scrolls to it.
(function () {
  function reveal(id) {
    var target = id && document.getElementById(id);
    if (!target) { return; }
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
    }
    target.scrollIntoView({block: "start"});
  }
  function fromHash() { reveal(decodeURIComponent(location.hash.slice(1))); }
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href^='#']");
    if (link) { reveal(decodeURIComponent(link.getAttribute("href").slice(1))); }
  });
  window.addEventListener("hashchange", fromHash);
  // Printing shows every finding's detail, not the closed summaries.
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details.has-finding").forEach(function (d) { d.open = true; });
  });
  fromHash();
})();
