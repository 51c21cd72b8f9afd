// Form Post Response Mode: hand the authorization response to the app by submitting the form.
// A visible button does the same when scripts are off (the page's CSP forbids inline script).
(function () {
  var form = document.getElementById("oauth-form-post");
  if (form) { form.submit(); }
})();
