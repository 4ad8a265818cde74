// The opportunity board (sales/funnel/board.html): the lost-reason menu shows only when
// "Lost" is chosen; a card dragged onto another column moves there. Loaded as a file, not
// inline, so the Content-Security-Policy needs no inline script.
(function () {
  // Show the lost-reason menu only when "Lost" is chosen; drag a card onto a column to move it.
  function sync(form) {
    var reason = form.querySelector('.lost-reason');
    if (reason) reason.hidden = form.elements.transition.value !== 'lose';
  }
  document.querySelectorAll('.opp-card form.move').forEach(function (form) {
    sync(form);
    form.elements.transition.addEventListener('change', function () { sync(form); });
  });
  var dragged = null;
  document.querySelectorAll('.opp-card[draggable=true]').forEach(function (card) {
    card.addEventListener('dragstart', function (e) { dragged = card; e.dataTransfer.setData('text/plain', card.dataset.opportunity); });
  });
  document.querySelectorAll('.opp-board .column').forEach(function (column) {
    column.addEventListener('dragover', function (e) { if (dragged) { e.preventDefault(); column.classList.add('drop-target'); } });
    column.addEventListener('dragleave', function () { column.classList.remove('drop-target'); });
    column.addEventListener('drop', function (e) {
      e.preventDefault();
      column.classList.remove('drop-target');
      if (!dragged) return;
      var form = dragged.querySelector('form.move');
      var option = form && form.querySelector('option[data-target="' + column.dataset.state + '"]');
      dragged = null;
      if (!option) return;
      form.elements.transition.value = option.value;
      sync(form);
      if (option.value === 'lose') { form.querySelector('.lost-reason').focus(); return; }
      form.submit();
    });
  });
})();
