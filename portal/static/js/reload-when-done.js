// On pages whose results appear when a job ends: reload once the progress bar reports the end.
document.addEventListener("job:finished", () => window.location.reload());
