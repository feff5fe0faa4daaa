// Follows a background job: polls its status URL and updates the bar until the job ends.
(function () {
  function follow(widget) {
    const url = widget.dataset.jobStatusUrl;
    const bar = widget.querySelector(".progress-bar");
    const label = widget.querySelector(".job-status-label");
    const counts = widget.querySelector(".job-counts");
    const error = widget.querySelector(".job-error");
    const result = document.getElementById("job-result");

    function render(job) {
      const percent = job.progress.percent ?? (job.status === "succeeded" ? 100 : 0);
      bar.style.width = `${percent}%`;
      bar.parentElement.setAttribute("aria-valuenow", String(percent));
      label.textContent = widget.dataset[`label${job.status.charAt(0).toUpperCase()}${job.status.slice(1)}`] || job.status;
      counts.textContent = job.progress.total ? `${job.progress.done} / ${job.progress.total}` : "";
      error.textContent = job.error || "";
      widget.dataset.status = job.status;
      if (job.status === "succeeded" || job.status === "failed") {
        bar.classList.remove("progress-bar-animated");
        bar.classList.add(job.status === "failed" ? "bg-danger" : "bg-success");
        if (result && job.status === "succeeded" && job.result && job.result.storage_key) {
          result.classList.remove("d-none");
        }
        widget.dispatchEvent(new CustomEvent("job:finished", { detail: job, bubbles: true }));
        return true;
      }
      return false;
    }

    async function poll(delay) {
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok && render(await response.json())) return;
      } catch (e) {
        // A network hiccup: keep polling, a little slower.
      }
      setTimeout(() => poll(Math.min(delay * 1.5, 5000)), delay);
    }
    poll(500);
  }
  document.querySelectorAll(".job-progress").forEach(follow);
})();
