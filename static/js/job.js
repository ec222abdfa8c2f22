/*
 * Vendo job page: invoice countdown, live status, "Pay with wallet" (EIP-1193),
 * copy buttons and the result download. Plain JS, no dependencies, no build step.
 * The page works without it; this only enhances what the server rendered.
 */
(function () {
  "use strict";

  var POLL_MS = 1500;
  var HIDDEN_POLL_MS = 5000;
  var ACTIVE_JOB = ["pending", "paid", "in_progress", "held"];
  var ACTIVE_INVOICE = ["open", "processing"];
  // Statuses whose page the server renders differently: reload to get it.
  var RELOAD_JOB = ["completed", "failed", "delivered", "expired", "disputed", "refunded"];
  var RELOAD_INVOICE = ["paid", "paid_late", "expired"];
  var JOB_NOTES = {
    paid: "Payment confirmed. Waiting for a worker to pick up the job.",
    in_progress: "The agent is working on it. This page updates live.",
    held: "Waiting for the platform. The job resumes by itself."
  };
  var PROGRESS_TITLES = { paid: "Queued for a worker", held: "Waiting for the platform" };
  var PAYMENT_LABELS = {
    pending: "Waiting for confirmations",
    confirmed: "Confirmed",
    rejected: "Rejected"
  };

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function includes(list, value) {
    return list.indexOf(value) !== -1;
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function formatInt(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  /* Base units (an integer) to a decimal string, without floats: "1500120" with 6
     decimals is "1.50012"; trailing zeros trimmed, at least two places kept. */
  function formatUnits(units, decimals) {
    if (units === null || units === undefined || units === "") return "";
    var digits = String(units).split(".")[0];
    var negative = digits.charAt(0) === "-";
    if (negative) digits = digits.slice(1);
    decimals = parseInt(decimals, 10) || 0;
    var whole = digits;
    var frac = "";
    if (decimals > 0) {
      while (digits.length < decimals + 1) digits = "0" + digits;
      whole = digits.slice(0, digits.length - decimals);
      frac = digits.slice(digits.length - decimals).replace(/0+$/, "");
    }
    while (frac.length < 2) frac += "0";
    return (negative ? "-" : "") + whole + "." + frac;
  }

  function parseTime(iso) {
    if (!iso) return new Date(NaN);
    // Python's isoformat() gives microseconds; keep milliseconds for every browser.
    return new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function clockTime(date) {
    return pad2(date.getHours()) + ":" + pad2(date.getMinutes()) + ":" + pad2(date.getSeconds());
  }

  function shortHash(hash) {
    hash = hash || "";
    return hash.length > 18 ? hash.slice(0, 10) + "\u2026" + hash.slice(-6) : hash;
  }

  function readJSONScript(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return null;
    }
  }

  var page = document.getElementById("job-page");
  var initial = readJSONScript("job-status-data");
  var state = initial;
  // Server time minus browser time, from the polls' Date headers, for the countdown.
  var clockOffset = 0;

  /* ------------------------------------------------------------ countdown */

  function startCountdown() {
    var node = document.getElementById("invoice-countdown");
    if (!node) return;
    var expires = parseTime(node.getAttribute("data-expires-at"));
    if (isNaN(expires.getTime())) return;
    var timer = null;

    function tick() {
      var left = Math.floor((expires.getTime() - (Date.now() + clockOffset)) / 1000);
      if (left <= 0) {
        node.textContent = "expired";
        node.classList.add("is-expired");
        node.classList.remove("is-urgent");
        if (timer) clearInterval(timer);
        return;
      }
      var hours = Math.floor(left / 3600);
      var minutes = Math.floor((left % 3600) / 60);
      var seconds = left % 60;
      node.textContent =
        (hours ? hours + ":" + pad2(minutes) : String(minutes)) + ":" + pad2(seconds) + " left";
      node.classList.toggle("is-urgent", left < 120);
    }

    tick();
    timer = setInterval(tick, 1000);
  }

  /* ------------------------------------------------------------ live status */

  function isActive(payload) {
    if (!payload || !payload.job) return false;
    if (includes(ACTIVE_JOB, payload.job.status)) return true;
    return !!(payload.invoice && includes(ACTIVE_INVOICE, payload.invoice.status));
  }

  function needsReload(rendered, next) {
    if (!rendered || !next) return false;
    if (next.job.status !== rendered.job.status && includes(RELOAD_JOB, next.job.status)) return true;
    if (!rendered.invoice && next.invoice) return true;
    if (rendered.invoice && next.invoice && rendered.invoice.status !== next.invoice.status &&
        includes(RELOAD_INVOICE, next.invoice.status)) return true;
    return false;
  }

  var reloading = false;

  function reloadPage() {
    if (reloading) return;
    reloading = true;
    var jobUrl = page && page.getAttribute("data-job-url");
    // After a failed hash submission the page sits at the POST's URL: never re-POST.
    if (jobUrl && window.location.pathname !== jobUrl) {
      window.location.assign(jobUrl);
    } else {
      window.location.reload();
    }
  }

  function renderJob(job) {
    var badge = document.getElementById("job-status");
    if (badge) {
      badge.setAttribute("data-status", job.status);
      badge.textContent = job.status_label;
    }
    var note = document.getElementById("job-status-note");
    if (note && JOB_NOTES[job.status] && job.status !== initial.job.status) {
      note.textContent = JOB_NOTES[job.status];
    }

    var running = job.status === "paid" || job.status === "in_progress" || job.status === "held";
    var progress = document.getElementById("progress");
    if (progress) progress.hidden = !running;
    var title = document.getElementById("progress-title");
    if (title) {
      var text = PROGRESS_TITLES[job.status] || "Generating your result";
      if (title.textContent !== text) title.textContent = text;
    }
    var tokens = document.getElementById("tokens");
    if (tokens) tokens.textContent = formatInt(job.output_tokens) + " tokens so far";
    var elapsed = document.getElementById("elapsed");
    if (elapsed) {
      var seconds = job.elapsed_seconds;
      elapsed.hidden = seconds === null || seconds === undefined;
      if (!elapsed.hidden) elapsed.textContent = formatInt(seconds) + " s elapsed";
    }
    var attempts = document.getElementById("attempts");
    if (attempts) attempts.textContent = job.attempts > 1 ? " Attempt " + job.attempts + "." : "";
    var errorNote = document.getElementById("job-error-note");
    if (errorNote) {
      errorNote.textContent = job.error || "";
      errorNote.hidden = !job.error;
    }

    var partial = document.getElementById("partial");
    if (partial) {
      var text2 = job.partial_text || "";
      if (partial.textContent !== text2) {
        var atBottom = partial.scrollHeight - partial.scrollTop - partial.clientHeight < 40;
        partial.textContent = text2;
        partial.hidden = !text2;
        if (atBottom) partial.scrollTop = partial.scrollHeight;
      }
    }
  }

  function setRow(rowId, valueId, units, decimals) {
    var row = document.getElementById(rowId);
    var value = document.getElementById(valueId);
    if (!row || !value) return;
    var n = Number(units || 0);
    row.hidden = !(n > 0);
    value.textContent = formatUnits(units || 0, decimals) + " USDC";
  }

  function renderInvoice(invoice) {
    if (!invoice) return;
    var badge = document.getElementById("invoice-status");
    if (badge) {
      badge.setAttribute("data-status", invoice.status);
      badge.textContent = invoice.status_label;
    }
    var due = document.getElementById("invoice-due");
    if (due) due.textContent = formatUnits(invoice.due_units, invoice.decimals) + " USDC";
    setRow("invoice-paid-row", "invoice-paid", invoice.paid_units, invoice.decimals);
    setRow("invoice-excess-row", "invoice-excess", invoice.excess_units, invoice.decimals);

    var button = document.getElementById("pay-wallet");
    if (button) {
      var units = Number(invoice.due_units) > 0 ? invoice.due_units : invoice.amount_units;
      button.setAttribute("data-amount-units", String(units));
    }
    var open = document.getElementById("open-wallet");
    if (open && invoice.payment_uri) open.setAttribute("href", invoice.payment_uri);
  }

  var lastPayments = initial ? JSON.stringify(initial.payments || []) : "[]";

  function renderPayments(payload) {
    var payments = payload.payments || [];
    var key = JSON.stringify(payments);
    if (key === lastPayments) return;
    lastPayments = key;
    var list = document.getElementById("payments");
    if (!list) return;
    var decimals = payload.invoice ? payload.invoice.decimals : 6;
    var fragment = document.createDocumentFragment();
    payments.forEach(function (payment) {
      var item = el("li", "payment");
      item.setAttribute("data-status", payment.status);

      var row = el("div", "payment-row");
      var code = el("code", "mono", shortHash(payment.tx_hash));
      code.title = payment.tx_hash || "";
      var badge = el("span", "badge", PAYMENT_LABELS[payment.status] || payment.status);
      badge.setAttribute("data-status", payment.status);
      row.appendChild(code);
      row.appendChild(badge);
      item.appendChild(row);

      var meta = el("div", "payment-meta");
      if (payment.amount_units !== null && payment.amount_units !== undefined) {
        meta.appendChild(el("span", null, formatUnits(payment.amount_units, decimals) + " USDC"));
      }
      if (payment.log_index !== null && payment.log_index !== undefined) {
        var n = payment.confirmations || 0;
        meta.appendChild(el("span", null, n + " confirmation" + (n === 1 ? "" : "s")));
      }
      if (meta.childNodes.length) item.appendChild(meta);

      if (payment.reason) {
        item.appendChild(el("p", "payment-reason" + (payment.status === "rejected" ? " is-error" : ""),
          payment.reason));
      }
      fragment.appendChild(item);
    });
    list.textContent = "";
    list.appendChild(fragment);
    var card = document.getElementById("payments-card");
    if (card) card.hidden = payments.length === 0;
  }

  function localizeTime(node) {
    var date = parseTime(node.getAttribute("datetime"));
    if (isNaN(date.getTime())) return;
    node.textContent = clockTime(date);
    node.title = date.toLocaleString();
  }

  var lastEvents = initial ? JSON.stringify(initial.events || []) : "[]";

  function renderTimeline(payload) {
    var events = payload.events || [];
    var key = JSON.stringify(events);
    if (key === lastEvents) return;
    lastEvents = key;
    var list = document.getElementById("timeline");
    if (!list) return;
    var fragment = document.createDocumentFragment();
    events.forEach(function (event) {
      var item = el("li", "timeline-item");
      item.setAttribute("data-kind", event.kind);
      var dot = el("span", "timeline-dot");
      dot.setAttribute("aria-hidden", "true");
      item.appendChild(dot);
      var body = el("div", "timeline-body");
      var head = el("div", "timeline-head");
      head.appendChild(el("span", "timeline-label", event.label || event.kind));
      var time = el("time");
      time.setAttribute("datetime", event.at);
      localizeTime(time);
      head.appendChild(time);
      body.appendChild(head);
      if (event.message) body.appendChild(el("p", "timeline-message", event.message));
      item.appendChild(body);
      fragment.appendChild(item);
    });
    if (!events.length) fragment.appendChild(el("li", "timeline-empty", "No events yet."));
    list.textContent = "";
    list.appendChild(fragment);
  }

  function render(payload) {
    renderJob(payload.job);
    renderInvoice(payload.invoice);
    renderPayments(payload);
    renderTimeline(payload);
  }

  var pollTimer = null;
  var inFlight = false;
  var failures = 0;
  var statusUrl = (page && page.getAttribute("data-status-url")) ||
    window.location.pathname.replace(/\/?$/, "/") + "status.json";

  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  function nextDelay() {
    if (failures) return Math.min(15000, POLL_MS * Math.pow(2, failures));
    return document.hidden ? HIDDEN_POLL_MS : POLL_MS;
  }

  function poll() {
    if (inFlight || reloading) return;
    inFlight = true;
    fetch(statusUrl, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin"
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        var serverDate = Date.parse(response.headers.get("Date") || "");
        if (!isNaN(serverDate)) {
          var offset = serverDate - Date.now();
          clockOffset = Math.abs(offset) > 5000 ? offset : 0;
        }
        return response.json();
      })
      .then(function (payload) {
        inFlight = false;
        failures = 0;
        render(payload);
        if (needsReload(initial, payload)) {
          reloadPage();
          return;
        }
        state = payload;
        if (isActive(payload)) schedule(nextDelay());
      })
      .catch(function () {
        inFlight = false;
        failures += 1;
        schedule(nextDelay());
      });
  }

  function startPolling() {
    if (!initial || !isActive(initial)) return;
    schedule(POLL_MS);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && !reloading && isActive(state)) schedule(0);
    });
  }

  /* ------------------------------------------------------------ pay with wallet */

  function userError(message) {
    var error = new Error(message);
    error.userFacing = true;
    return error;
  }

  function errorCode(error) {
    if (!error) return null;
    if (error.code !== undefined) return error.code;
    if (error.data && error.data.code !== undefined) return error.data.code;
    return null;
  }

  function walletErrorMessage(error, chainId) {
    if (error && error.userFacing) return error.message;
    var code = errorCode(error);
    var nested = error && error.data && error.data.originalError && error.data.originalError.code;
    if (code === 4001 || code === "ACTION_REJECTED") return "You rejected the request in your wallet.";
    if (code === 4902 || nested === 4902) return "Add chain " + chainId + " to your wallet first.";
    if (code === -32002) return "Your wallet already has a request waiting: open it to continue.";
    if (code === 4100) return "Your wallet has not authorised this site. Connect it and try again.";
    var message = (error && error.message) || String(error);
    if (/insufficient funds/i.test(message)) {
      return "Your wallet has too little gas (native token) on this chain to send the transfer.";
    }
    return "The wallet could not send the payment: " + message;
  }

  function transferData(recipient, units) {
    var address = String(recipient || "").toLowerCase().replace(/^0x/, "");
    if (!/^[0-9a-f]{40}$/.test(address)) throw userError("The invoice has no valid recipient address.");
    if (!/^\d+$/.test(String(units))) throw userError("The invoice amount is not readable.");
    var amount = BigInt(String(units));
    if (amount <= BigInt(0)) throw userError("Nothing is due on this invoice.");
    var hex = amount.toString(16);
    while (hex.length < 64) hex = "0" + hex;
    while (address.length < 64) address = "0" + address;
    // transfer(address,uint256)
    return "0xa9059cbb" + address + hex;
  }

  function submitHash(hash, submitUrl) {
    var form = document.getElementById("tx-hash-form");
    if (form && form.elements.tx_hash) {
      form.elements.tx_hash.value = hash;
      HTMLFormElement.prototype.submit.call(form);
      return;
    }
    // No form on the page: post the hash the same way, with the page's CSRF token.
    var token = document.querySelector("input[name=csrfmiddlewaretoken]");
    var post = document.createElement("form");
    post.method = "post";
    post.action = submitUrl;
    post.hidden = true;
    [["csrfmiddlewaretoken", token ? token.value : ""], ["tx_hash", hash]].forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      post.appendChild(input);
    });
    document.body.appendChild(post);
    HTMLFormElement.prototype.submit.call(post);
  }

  function setupWallet() {
    var button = document.getElementById("pay-wallet");
    if (!button) return;
    var status = document.getElementById("wallet-status");

    function say(text, kind) {
      if (!status) return;
      status.textContent = text;
      status.className = "wallet-status" + (kind ? " is-" + kind : "");
    }

    button.addEventListener("click", function () {
      var chainId = parseInt(button.getAttribute("data-chain-id"), 10);
      var ethereum = window.ethereum;
      if (!ethereum || typeof ethereum.request !== "function") {
        say("No browser wallet found \u2014 scan the QR code or paste a transaction hash.", "error");
        return;
      }
      if (typeof BigInt !== "function") {
        say("This browser is too old to build the transfer \u2014 scan the QR code instead.", "error");
        return;
      }
      var account = null;
      var units = button.getAttribute("data-amount-units");
      var decimals = state && state.invoice ? state.invoice.decimals : 6;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      say("Connecting to your wallet\u2026");

      ethereum.request({ method: "eth_requestAccounts" })
        .then(function (accounts) {
          if (!accounts || !accounts.length) throw userError("Your wallet shared no account.");
          account = accounts[0];
          return ethereum.request({ method: "eth_chainId" }).catch(function () { return null; });
        })
        .then(function (current) {
          if (current && parseInt(current, 16) === chainId) return null;
          say("Switching your wallet to chain " + chainId + "\u2026");
          return ethereum.request({
            method: "wallet_switchEthereumChain",
            params: [{ chainId: "0x" + chainId.toString(16) }]
          }).catch(function (error) {
            var nested = error && error.data && error.data.originalError && error.data.originalError.code;
            if (errorCode(error) === 4902 || nested === 4902) {
              throw userError("Add chain " + chainId + " to your wallet first.");
            }
            throw error;
          });
        })
        .then(function () {
          var data = transferData(button.getAttribute("data-recipient"), units);
          say("Confirm the transfer of " + formatUnits(units, decimals) + " USDC in your wallet\u2026");
          return ethereum.request({
            method: "eth_sendTransaction",
            params: [{ from: account, to: button.getAttribute("data-token"), data: data }]
          });
        })
        .then(function (hash) {
          if (typeof hash !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(hash)) {
            throw userError("The wallet returned no transaction hash. Paste it below once it is sent.");
          }
          say("Transaction sent. Checking the payment\u2026", "success");
          submitHash(hash, button.getAttribute("data-submit-url"));
        })
        .catch(function (error) {
          say(walletErrorMessage(error, chainId), "error");
          button.disabled = false;
          button.removeAttribute("aria-busy");
        });
    });
  }

  /* ------------------------------------------------------------ copy and download */

  function readText(node) {
    if (!node) return "";
    if (node.tagName === "SCRIPT" && /json/i.test(node.type || "")) {
      try {
        var value = JSON.parse(node.textContent);
        return typeof value === "string" ? value : JSON.stringify(value, null, 2);
      } catch (error) {
        return node.textContent;
      }
    }
    if ("value" in node && (node.tagName === "INPUT" || node.tagName === "TEXTAREA")) return node.value;
    return node.textContent;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (error) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy failed"));
    });
  }

  function setupCopy() {
    var buttons = document.querySelectorAll("[data-copy], [data-copy-target]");
    Array.prototype.forEach.call(buttons, function (button) { button.hidden = false; });

    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("[data-copy], [data-copy-target]") : null;
      if (!button) return;
      event.preventDefault();
      var text = button.hasAttribute("data-copy")
        ? button.getAttribute("data-copy")
        : readText(document.querySelector(button.getAttribute("data-copy-target")));
      if (!button.hasAttribute("data-label")) button.setAttribute("data-label", button.textContent);
      copyText(text).then(
        function () { flash(button, "Copied", true); },
        function () { flash(button, "Copy failed", false); }
      );
    });
  }

  function flash(button, text, ok) {
    clearTimeout(button._flashTimer);
    button.textContent = text;
    button.classList.toggle("is-done", ok);
    button._flashTimer = setTimeout(function () {
      button.textContent = button.getAttribute("data-label");
      button.classList.remove("is-done");
    }, 1600);
  }

  function setupDownload() {
    var link = document.getElementById("download-result");
    var source = document.getElementById("result-source");
    if (!link || !source || typeof Blob !== "function" || !window.URL || !URL.createObjectURL) return;
    var mimetype = link.getAttribute("data-mimetype") || "text/plain";
    var blob = new Blob([readText(source)], { type: mimetype + ";charset=utf-8" });
    link.href = URL.createObjectURL(blob);
    link.download = link.getAttribute("data-filename") || "result.txt";
    link.hidden = false;
  }

  /* ------------------------------------------------------------ start */

  // After a rejected hash the server re-renders the page with errors: bring the form into view.
  function focusFormErrors() {
    var form = document.getElementById("tx-hash-form");
    if (!form || !form.querySelector(".field-errors")) return;
    var input = form.elements.tx_hash;
    form.scrollIntoView({ block: "center" });
    if (input) input.focus({ preventScroll: true });
  }

  function start() {
    var times = document.querySelectorAll("#timeline time[datetime]");
    Array.prototype.forEach.call(times, localizeTime);
    startCountdown();
    setupCopy();
    setupDownload();
    setupWallet();
    startPolling();
    focusFormErrors();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  // For tests and the console.
  window.Vendo = { formatUnits: formatUnits, transferData: transferData };
})();
