// Small enhancements; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Times are rendered in UTC by the server; add the reader's local time beside the UTC one.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(el.getAttribute("datetime"));
    if (!isNaN(moment)) {
      el.title = `${el.textContent} · local: ${moment.toLocaleString()}`;
    }
  }
  // Filter forms: a changed select applies at once; empty fields stay out of the address.
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
    form.addEventListener("formdata", (event) => {
      for (const [key, value] of [...event.formData.entries()]) {
        if (value === "") event.formData.delete(key);
      }
    });
  }
  // Uploads: say at once when a file is over the server's limit instead of sending it.
  for (const form of document.querySelectorAll("form[data-limit]")) {
    const limit = Number(form.dataset.limit);
    const note = form.querySelector("[data-size]");
    form.addEventListener("change", () => {
      const file = form.querySelector("input[name=file]").files[0];
      if (file && note) {
        note.textContent = file.size > limit
          ? `${file.name} is ${file.size.toLocaleString()} bytes: over the ${limit.toLocaleString()}-byte limit.`
          : `${file.name}: ${file.size.toLocaleString()} bytes.`;
      }
    });
    form.addEventListener("submit", (event) => {
      const file = form.querySelector("input[name=file]").files[0];
      if (file && file.size > limit) event.preventDefault();
    });
  }
});
