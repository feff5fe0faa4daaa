// The order desk: "tick all" ticks every order of the page that can still be accepted or refused.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("tick-all");
  if (!all) return;
  all.addEventListener("change", () => {
    document.querySelectorAll(".order-tick").forEach((box) => { box.checked = all.checked; });
  });
});
