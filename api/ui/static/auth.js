/* lineinspect QA UI: the API key on reads (LINEINSPECT_AUTH_READS, docs/SECURITY.md).
 *
 * Reads go without a key until one answers 401: then the service protects reads, and every
 * read from here on sends the key entered top right (images and the CSV export too, fetched
 * with the key: an <img src> or a download link cannot send a header). Without a key, or
 * with one the service refused, the UI asks for it instead of sending requests that would
 * only count as failed key checks (too many of them lock this browser out for a minute).
 * Loaded before app.js, which uses apiFetch, readError, setImage and downloadWithKey. */
"use strict";

const auth = {
  readsNeedKey: false,  // learnt from the first read answered 401
  refusedKey: null,     // the key the service last refused (not sent again)
};

function apiKey() {
  const input = document.getElementById("apikey");
  return (input && input.value) || "";
}

/* An error whose message asks for the key (shown where the view's data would be). */
function keyError(message) {
  const err = new Error(message);
  err.needsKey = true;
  return err;
}

/* fetch() of a read: with the key once reads need it; throws a keyError instead of
 * sending a read that cannot pass. */
async function apiFetch(path, init = {}) {
  const send = (withKey) => fetch(path, { ...init, headers: { ...(init.headers || {}),
    ...(withKey ? { "X-API-Key": apiKey() } : {}) } });
  if (auth.readsNeedKey) {
    const key = apiKey();
    if (!key) throw keyError("Reads need an API key (role viewer or above): enter it top right.");
    if (key === auth.refusedKey) throw keyError("The API key was refused (401): check it (top right).");
    const resp = await send(true);
    if (resp.status === 401) auth.refusedKey = key;
    return resp;
  }
  const resp = await send(false);
  if (resp.status !== 401) return resp;
  auth.readsNeedKey = true;  // this service protects reads: retry once with the key
  return apiFetch(path, init);
}

/* Set <img>'s picture from an API URL: directly while reads are open, else fetched with the
 * key into a blob: URL (the page's CSP allows blob: images). */
async function setImage(img, src) {
  if (img.dataset.blobUrl) URL.revokeObjectURL(img.dataset.blobUrl);
  delete img.dataset.blobUrl;
  img.dataset.src = src;
  if (!auth.readsNeedKey) { img.src = src; return; }
  img.removeAttribute("src");
  try {
    const resp = await apiFetch(src);
    if (!resp.ok) throw new Error(`${resp.status}`);
    const url = URL.createObjectURL(await resp.blob());
    if (img.dataset.src !== src) { URL.revokeObjectURL(url); return; }  // replaced meanwhile
    img.dataset.blobUrl = url;
    img.src = url;
  } catch (err) {
    img.alt = `image not loaded: ${err.message}`;
  }
}

/* A download link (the CSV export) that sends the key when reads need it. */
function downloadWithKey(link) {
  link.addEventListener("click", async (ev) => {
    if (!auth.readsNeedKey) return;  // a plain download
    ev.preventDefault();
    try {
      const resp = await apiFetch(link.href);
      if (!resp.ok) throw new Error(`${resp.status}`);
      const url = URL.createObjectURL(await resp.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = link.getAttribute("download") || "inspections.csv";
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      link.title = `export failed: ${err.message}`;
    }
  });
}
