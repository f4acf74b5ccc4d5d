// The CSV link of the report and staffing pages. A link cannot send the bearer token: with a token in the
// page URL the file is fetched and handed over as a download named by `filename()`.
window.csvDownload = (link, token, headers, filename) => {
  link.addEventListener("click", async (event) => {
    if (!token) return;
    event.preventDefault();
    const response = await fetch(link.href, { headers });
    const url = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = filename();
    a.click();
    URL.revokeObjectURL(url);
  });
};
