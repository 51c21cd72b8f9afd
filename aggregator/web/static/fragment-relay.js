// Hybrid OpenID Connect responses come back in the URL fragment, which never reaches the
// server. Copy its parameters into a same-origin form post (the callback route reads both).
(function () {
  var form = document.getElementById("fragment-relay");
  var params = new URLSearchParams(window.location.hash.slice(1));
  params.forEach(function (value, key) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = key;
    input.value = value;
    form.appendChild(input);
  });
  history.replaceState(null, "", window.location.pathname);
  form.submit();
})();
