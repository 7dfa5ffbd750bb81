// On a phone each table row is a card, one line per cell (app.css). Name each cell after its column
// (data-label, shown before the value) so a bare "1" still says what it counts. The first cell is
// the card's title; cells that carry their own data-label keep it. Without JavaScript the cards show
// the values alone.
function labelCells() {
  for (const table of document.querySelectorAll(".table-wrap > table:not(.console):not(.stack)")) {
    const heads = [...table.querySelectorAll(":scope > thead th")].map((th) => th.textContent.trim());
    for (const row of table.querySelectorAll(":scope > tbody > tr")) {
      [...row.children].forEach((cell, i) => {
        if (i > 0 && heads[i] && cell.colSpan === 1 && !cell.hasAttribute("data-label")) cell.dataset.label = heads[i];
      });
    }
  }
}
document.addEventListener("DOMContentLoaded", labelCells);
document.addEventListener("htmx:afterSettle", labelCells);
