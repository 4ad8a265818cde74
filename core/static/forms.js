// Small behaviours of forms, declared in the markup so that pages need no inline script
// (the Content-Security-Policy allows scripts from files only):
//   <form data-confirm="Delete this contact?">  asks before submitting;
//   <select data-autosubmit>                     submits its form when changed.
(function () {
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
  document.addEventListener('change', function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute('data-autosubmit') && field.form) field.form.submit();
  });
})();
