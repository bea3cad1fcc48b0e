// eventbus console: live refresh of the groups table, the live tail (server-sent
// events). Every value from the server is set as text (textContent), never as HTML.
"use strict";

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

function refreshGroups(table) {
  const count = (n, more) => (n === null ? "n/a" : more ? n + "+" : String(n));
  const tick = () => {
    fetch("/api/groups", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        if (!data) return;
        const stamp = Date.now();
        for (const g of data.groups) {
          const row = Array.from(table.tBodies[0].rows).find((r) => r.dataset.group === g.name);
          if (!row) continue;
          row.querySelector(".waiting").textContent = count(g.waiting, false);
          const dead = row.querySelector(".dead a") || row.querySelector(".dead");
          dead.textContent = count(g.dead_letters, g.dead_letters_more);
          const img = row.querySelector("img.chart");
          if (img) img.src = img.src.split("?")[0] + "?t=" + stamp;
        }
      })
      .catch(() => {});
  };
  setInterval(tick, 3000);
}

function startTail(status) {
  const table = document.getElementById("tail");
  const body = table.tBodies[0];
  const source = new EventSource("/tail/events?pattern=" + encodeURIComponent(status.dataset.pattern));
  let count = 0;
  source.onmessage = (msg) => {
    const item = JSON.parse(msg.data);
    if (item.ready) {
      status.textContent = "watching " + status.dataset.pattern + " through group " + item.ready;
      status.dataset.ready = "yes";
      return;
    }
    if (item.error) { status.textContent = "stopped: " + item.error; return; }
    if (item.end) { status.textContent += " (ended)"; source.close(); return; }
    const line = item.line;
    const row = document.createElement("tr");
    if (line.data.startsWith("! undecodable")) row.className = "bad";
    cell(row, line.received);
    cell(row, line.type);
    cell(row, line.id);
    cell(row, line.key);
    cell(row, line.correlationid);
    cell(row, line.data, "preview");
    body.insertBefore(row, body.firstChild);
    count += 1;
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) status.textContent = "disconnected";
  };
  window.addEventListener("beforeunload", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  const groups = document.getElementById("groups");
  if (groups) refreshGroups(groups);
  const status = document.getElementById("tail-status");
  if (status) startTail(status);
});
