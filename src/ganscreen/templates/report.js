(function () {
  "use strict";
  var list = document.getElementById("cards");
  var controls = document.getElementById("controls");
  if (!list || !controls) { return; }
  var cards = Array.prototype.slice.call(list.querySelectorAll("article.card"));
  var sort = document.getElementById("sort");
  var verdict = document.getElementById("verdict");
  var flag = document.getElementById("flag");
  var shown = document.getElementById("shown");

  function index(card) { return Number(card.getAttribute("data-index")); }
  function score(card) {
    var text = card.getAttribute("data-score");
    return text === "" ? null : Number(text);
  }
  function compare(a, b) {
    var mode = sort.value;
    if (mode !== "input") {
      var sa = score(a), sb = score(b);
      if (sa !== sb) {
        if (sa === null) { return 1; }
        if (sb === null) { return -1; }
        return mode === "score-desc" ? sb - sa : sa - sb;
      }
    }
    return index(a) - index(b);
  }
  function matches(card) {
    var v = verdict.value, f = flag.value;
    var flags = (card.getAttribute("data-flags") || "").split(" ").filter(Boolean);
    if (v !== "all" && card.getAttribute("data-outcome") !== v) { return false; }
    if (f === "any") { return flags.length > 0; }
    if (f === "none") { return flags.length === 0; }
    return f === "all" || flags.indexOf(f) >= 0;
  }
  function apply() {
    var n = 0;
    cards.slice().sort(compare).forEach(function (card) {
      var ok = matches(card);
      card.hidden = !ok;
      if (ok) { n += 1; }
      list.appendChild(card);
    });
    shown.textContent = n + " of " + cards.length + " shown";
  }
  // The view is kept in the address (#sort=score-desc&verdict=gan&flag=any), so it can be
  // bookmarked or shared; only values that are options of the menus are taken.
  var menus = { sort: sort, verdict: verdict, flag: flag };
  function fromHash() {
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var parts = pair.split("=");
      var menu = menus[parts[0]];
      var value;
      try { value = decodeURIComponent(parts[1] || ""); } catch (e) { return; }
      if (menu && Array.prototype.some.call(menu.options, function (o) { return o.value === value; })) {
        menu.value = value;
      }
    });
  }
  function toHash() {
    var hash = Object.keys(menus).map(function (key) {
      return key + "=" + encodeURIComponent(menus[key].value);
    }).join("&");
    try { history.replaceState(null, "", "#" + hash); } catch (e) { /* not on every file: URL */ }
  }
  [sort, verdict, flag].forEach(function (el) {
    el.addEventListener("change", function () { apply(); toHash(); });
  });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  controls.addEventListener("submit", function (event) { event.preventDefault(); });
  controls.hidden = false;
  fromHash();
  apply();
  document.documentElement.setAttribute("data-report-js", "ready");
}());
