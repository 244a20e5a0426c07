// Synthèse review: single-letter keys read from KeyboardEvent.key (the character typed, so AZERTY and
// QWERTY alike), inactive while typing in a field. Everything works without this script through the
// forms and links; it only moves a focus and submits the same forms.
(function () {
  "use strict";
  var help = document.getElementById("help");
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function toggleHelp() { if (help) help.hidden = !help.hidden; }
  document.querySelectorAll(".help-button").forEach(function (b) { b.addEventListener("click", toggleHelp); });

  var items = Array.prototype.slice.call(document.querySelectorAll(document.body.classList.contains("queue") ? "tr.row" : "article.entry"));
  var current = -1;
  function select(i, scroll) {
    if (!items.length) return;
    i = Math.max(0, Math.min(items.length - 1, i));
    if (current >= 0 && items[current]) items[current].classList.remove("current");
    current = i;
    items[i].classList.add("current");
    if (scroll !== false) items[i].scrollIntoView({block: "center"});
    if (items[i].id && history.replaceState) history.replaceState(null, "", "#" + items[i].id);
  }
  // Start on the entry the server asked for (after a decision: the next one to review), else the first pending.
  var params = new URLSearchParams(location.search);
  var want = params.get("focus") || (location.hash ? location.hash.slice(3) : null);
  var start = items.findIndex(function (el) { return el.dataset.id && el.dataset.id === want; });
  if (start < 0) start = items.findIndex(function (el) { return el.classList.contains("pending"); });
  if (items.length) select(start < 0 ? 0 : start, start >= 0);

  function submit(selector, scope) {
    var form = (scope || document).querySelector(selector);
    if (form) { form.requestSubmit ? form.requestSubmit() : form.submit(); return true; }
    return false;
  }
  function go(id) { var a = document.getElementById(id); if (a) location.href = a.href; }

  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") {
      if (help && !help.hidden) { help.hidden = true; return; }
      var open = document.querySelector("details[open]");
      if (open) { open.open = false; if (document.activeElement) document.activeElement.blur(); }
      return;
    }
    if (typing(ev.target) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var item = items[current];
    var handled = true;
    switch (ev.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "?": toggleHelp(); break;
      case "v": if (!item || !submit("form.validate", item)) handled = false; break;
      case "r": if (!item || !submit("form.reject", item)) handled = false; break;
      case "c":
        var d = item && item.querySelector("details.correct");
        if (d) { d.open = true; var f = d.querySelector("input:not([type=hidden]), select"); if (f) { f.focus(); if (f.setSelectionRange) f.setSelectionRange(f.value.length, f.value.length); } } else handled = false;
        break;
      case "V": handled = submit("#validate-dossier"); break;
      case "u": handled = submit("#undo"); break;
      case "n": go("next-dossier"); break;
      case "q": go("back"); break;
      case "o": case "Enter":
        if (item && item.dataset.href) location.href = item.dataset.href; else handled = false;
        break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });
})();
