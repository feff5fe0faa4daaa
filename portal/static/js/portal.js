// Small behaviours of every page: confirmation of destructive buttons, copy buttons, progress widths.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  input.select();
  navigator.clipboard?.writeText(input.value);
});
// The CSP forbids inline style attributes, so widths given as data are applied here.
document.querySelectorAll("[data-percent]").forEach((el) => {
  el.style.width = `${el.dataset.percent}%`;
});
