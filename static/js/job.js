/*
 * Vendo job page: invoice countdown, live status, the pay block ("Pay with wallet" through
 * EIP-1193, claiming a transfer by signing), copy buttons and the result download. Plain JS,
 * no dependencies, no build step. The page works without it; this only enhances what the
 * server rendered.
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
    rejected: "Rejected",
    reverted: "Reverted",
    retired: "No longer checked"
  };
  // A transfer only its sender can claim for this job, by signing.
  var CLAIM_CODES = ["signature_required", "wrong_signer"];
  // localStorage key prefix of the hashes this browser sent, per invoice reference.
  var SENT_PREFIX = "vendo:sent:";
  var HASH_RE = /^0x[0-9a-f]{64}$/;
  var RESUBMIT_RETRY_MS = 10000;

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

  /* ------------------------------------------------------------ amounts

     Token amounts are integers of base units, sent by the server as JSON strings. They stay
     strings (or BigInt) here: a Number loses the last digits above 2^53, and 1e21 would read
     "1e+21". */

  // The base units as a string of digits, or null when `units` is not an exact integer.
  function unitsText(units) {
    if (typeof units === "bigint") return units.toString();
    if (typeof units === "string" && /^-?\d+$/.test(units)) return units;
    if (typeof units === "number" && Number.isSafeInteger(units)) return String(units);
    return null;
  }

  function isPositive(units) {
    var text = unitsText(units);
    return text !== null && text.charAt(0) !== "-" && /[1-9]/.test(text);
  }

  /* Base units to the token's amount with all of its decimals, as the server prints it:
     "1500120" with 6 decimals is "1.500120"; with 18, every one of the 18 places shows. */
  function formatUnits(units, decimals) {
    var text = unitsText(units);
    if (text === null) return "";
    var negative = text.charAt(0) === "-";
    var digits = (negative ? text.slice(1) : text).replace(/^0+(?=\d)/, "");
    decimals = parseInt(decimals, 10);
    if (!(decimals > 0)) return (negative ? "-" : "") + digits;
    while (digits.length < decimals + 1) digits = "0" + digits;
    var whole = digits.slice(0, digits.length - decimals);
    var frac = digits.slice(digits.length - decimals);
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
  var reference = (initial && initial.invoice && initial.invoice.reference) || "";
  // The wallet flow in progress (it owns the pay button while busy) and a claim being signed.
  var wallet = { busy: false, flow: null, listening: false };
  var claiming = false;
  // When a hash this browser sent may be posted again (ms since the epoch).
  var resubmits = {};
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
    if (!rendered.invoice || !next.invoice) return false;
    if (rendered.invoice.status !== next.invoice.status &&
        includes(RELOAD_INVOICE, next.invoice.status)) return true;
    // Something is due again (a reorganisation took a payment back), or another amount is due:
    // only the server draws the QR code and the link, so fetch a fresh page for them.
    if (next.invoice.payable && !wallet.busy && !claiming &&
        (!rendered.invoice.payable || rendered.invoice.due_units !== next.invoice.due_units)) {
      return true;
    }
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
    row.hidden = !isPositive(units);
    value.textContent = formatUnits(units || "0", decimals) + " USDC";
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
    setRow("invoice-pending-row", "invoice-pending", invoice.pending_units, invoice.decimals);
    setRow("invoice-excess-row", "invoice-excess", invoice.excess_units, invoice.decimals);
    setRow("invoice-late-row", "invoice-late", invoice.late_units, invoice.decimals);
  }

  function hiddenInput(name, value) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  // The same claim form the server renders under a transfer only its sender can claim.
  function claimForm(payment) {
    var hash = String(payment.tx_hash || "").toLowerCase();
    var form = el("form", "claim-form");
    form.method = "post";
    form.action = submitUrl();
    form.setAttribute("data-claim-message", "Vendo: transaction " + hash + " pays job " + reference);
    form.appendChild(hiddenInput("csrfmiddlewaretoken", csrfToken()));
    form.appendChild(hiddenInput("tx_hash", hash));
    form.appendChild(hiddenInput("signature", ""));
    var button = el("button", "btn btn-sm claim-button", "Claim it: sign with the sending wallet");
    button.type = "button";
    form.appendChild(button);
    var status = el("p", "help claim-status");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    form.appendChild(status);
    return form;
  }

  var lastPayments = initial ? JSON.stringify(initial.payments || []) : "[]";

  function renderPayments(payload) {
    // A claim being signed keeps its form in the page, or its post would go nowhere.
    if (claiming) return;
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
      item.setAttribute("data-tx-hash", payment.tx_hash || "");

      var row = el("div", "payment-row");
      var code = el("code", "mono", shortHash(payment.tx_hash));
      code.title = payment.tx_hash || "";
      var badge = el("span", "badge",
        payment.status_label || PAYMENT_LABELS[payment.status] || payment.status);
      badge.setAttribute("data-status", payment.status);
      row.appendChild(code);
      row.appendChild(badge);
      item.appendChild(row);

      var meta = el("div", "payment-meta");
      if (unitsText(payment.amount_units) !== null) {
        meta.appendChild(el("span", null, formatUnits(payment.amount_units, decimals) + " USDC"));
      }
      if (payment.log_index !== null && payment.log_index !== undefined) {
        var n = payment.confirmations || 0;
        meta.appendChild(el("span", null, n + " confirmation" + (n === 1 ? "" : "s")));
      }
      if (payment.late) meta.appendChild(el("span", null, "late: sent back"));
      if (meta.childNodes.length) item.appendChild(meta);

      if (payment.reason) {
        item.appendChild(el("p", "payment-reason" + (payment.status === "rejected" ? " is-error" : ""),
          payment.reason));
      }
      if (includes(CLAIM_CODES, payment.code) && reference) item.appendChild(claimForm(payment));
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
    renderPay(payload);
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
        state = payload;
        render(payload);
        if (needsReload(initial, payload)) {
          reloadPage();
          return;
        }
        resubmitUnresolved(payload);
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

  /* ------------------------------------------------------------ the pay block

     It offers only what is still due, never the whole amount again. The server says whether
     something is due and nothing is on its way (`payable`); this browser adds the hashes it
     sent that Vendo does not list yet, remembered per invoice in localStorage so that a
     reload or a second tab knows them too. While any of that is unresolved there is no QR
     code, no link and no enabled button, and a click sends nothing. */

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var cookie = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
    return cookie ? decodeURIComponent(cookie[1]) : "";
  }

  function submitUrl() {
    var form = document.getElementById("tx-hash-form");
    return (form && form.getAttribute("action")) || (page && page.getAttribute("data-submit-url")) || "";
  }

  function storage() {
    try {
      return window.localStorage || null;
    } catch (error) { // storage disabled: the server's view alone guards the page
      return null;
    }
  }

  function sentKey() {
    return SENT_PREFIX + reference;
  }

  function loadSent() {
    var store = storage();
    if (!store || !reference) return [];
    try {
      var list = JSON.parse(store.getItem(sentKey()) || "[]");
      return Array.isArray(list) ? list.filter(function (hash) { return HASH_RE.test(hash); }) : [];
    } catch (error) {
      return [];
    }
  }

  function saveSent(list) {
    var store = storage();
    if (!store || !reference) return;
    try {
      if (list.length) store.setItem(sentKey(), JSON.stringify(list));
      else store.removeItem(sentKey());
    } catch (error) {
      // A full or refused storage: the hash still goes to the server with the form.
    }
  }

  function rememberSent(hash) {
    var list = loadSent();
    if (list.indexOf(hash) === -1) list.push(hash);
    saveSent(list);
  }

  function forgetSent(hash) {
    saveSent(loadSent().filter(function (sent) { return sent !== hash; }));
  }

  // The hashes this browser sent for the invoice that the server does not list yet.
  function unresolvedHashes(payload) {
    var invoice = payload && payload.invoice;
    var list = loadSent();
    if (!list.length || !invoice) return [];
    if (!includes(ACTIVE_INVOICE, invoice.status)) {
      saveSent([]);
      return [];
    }
    var known = {};
    (payload.payments || []).forEach(function (payment) {
      known[String(payment.tx_hash || "").toLowerCase()] = true;
    });
    var left = list.filter(function (hash) { return !known[hash]; });
    if (left.length !== list.length) saveSent(left);
    return left;
  }

  function canPay(payload, unresolved) {
    return !!(payload && payload.invoice && payload.invoice.payable && !unresolved.length);
  }

  function renderPay(payload) {
    var block = document.getElementById("pay");
    if (!block || !payload || !payload.invoice) return;
    var invoice = payload.invoice;
    var unresolved = unresolvedHashes(payload);
    var payable = canPay(payload, unresolved);
    var onItsWay = !payable && (!!invoice.on_its_way || unresolved.length > 0);

    var notice = document.getElementById("on-its-way");
    if (notice) notice.hidden = !onItsWay;
    var note = document.getElementById("on-its-way-note");
    if (note && onItsWay) {
      var text = unresolved.length
        ? "Your transaction was sent from this browser and Vendo is checking it. Nothing more to send."
        : invoice.waiting_hashes
          ? "Your transaction is not on chain yet. This page updates once it is mined."
          : "Your transfer is waiting for confirmations. Nothing more to send.";
      if (note.textContent !== text) note.textContent = text;
    }
    // Everything that asks for money, the "Send exactly ..." steps included.
    ["qr-block", "open-wallet", "pay-note", "next-steps"].forEach(function (id) {
      var node = document.getElementById(id);
      if (node) node.hidden = !payable;
    });
    var dev = block.querySelector(".dev-pay");
    if (dev) dev.hidden = !payable;
    var open = document.getElementById("open-wallet");
    if (open && payable && invoice.payment_uri) open.setAttribute("href", invoice.payment_uri);

    var button = document.getElementById("pay-wallet");
    if (!button) return;
    button.setAttribute("data-amount-units", invoice.due_units);
    if (wallet.busy) return; // the flow in progress owns the button
    button.disabled = !payable;
    var label = button.querySelector(".pay-wallet-label");
    var words = payable ? "Pay with wallet" : "Payment on its way";
    if (label && label.textContent !== words) label.textContent = words;
  }

  /* Post the hashes Vendo does not list yet in the background: the page was left, or the
     post lost, between the wallet's answer and the server. Vendo takes a hash once; posting
     it again is harmless. */
  function resubmitUnresolved(payload) {
    var url = submitUrl();
    if (!url || typeof fetch !== "function" || typeof URLSearchParams !== "function") return;
    unresolvedHashes(payload).forEach(function (hash) {
      if ((resubmits[hash] || 0) > Date.now()) return;
      resubmits[hash] = Infinity;
      var body = new URLSearchParams();
      body.append("csrfmiddlewaretoken", csrfToken());
      body.append("tx_hash", hash);
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() }
      })
        .then(function (response) {
          if (response.ok) {
            schedule(0);
          } else if (response.status >= 400 && response.status < 500 && response.status !== 429) {
            // Vendo refused the hash itself: stop waiting for it here; the form tells why.
            forgetSent(hash);
            say("Vendo did not take the transaction " + shortHash(hash) +
              " sent from this browser. Paste it below to see why.", "error");
            renderPay(state);
          } else {
            resubmits[hash] = Date.now() + RESUBMIT_RETRY_MS;
          }
        }, function () {
          resubmits[hash] = Date.now() + RESUBMIT_RETRY_MS;
        });
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

  // transfer(address,uint256) calldata, the amount taken from its digits exactly.
  function transferData(recipient, units) {
    var address = String(recipient || "").toLowerCase().replace(/^0x/, "");
    if (!/^[0-9a-f]{40}$/.test(address)) throw userError("The invoice has no valid recipient address.");
    var text = unitsText(units);
    if (text === null || !/^\d+$/.test(text)) throw userError("The invoice amount is not readable.");
    var amount = BigInt(text);
    if (amount <= BigInt(0)) throw userError("Nothing is due on this invoice.");
    var hex = amount.toString(16);
    if (hex.length > 64) throw userError("The invoice amount is too large for a transfer.");
    while (hex.length < 64) hex = "0" + hex;
    while (address.length < 64) address = "0" + address;
    return "0xa9059cbb" + address + hex;
  }

  function submitHash(hash) {
    var form = document.getElementById("tx-hash-form");
    if (form && form.elements.tx_hash) {
      form.elements.tx_hash.value = hash;
      HTMLFormElement.prototype.submit.call(form);
      return;
    }
    // No form on the page: post the hash the same way, with the page's CSRF token.
    var post = document.createElement("form");
    post.method = "post";
    post.action = submitUrl();
    post.hidden = true;
    post.appendChild(hiddenInput("csrfmiddlewaretoken", csrfToken()));
    post.appendChild(hiddenInput("tx_hash", hash));
    document.body.appendChild(post);
    HTMLFormElement.prototype.submit.call(post);
  }

  function say(text, kind) {
    var status = document.getElementById("wallet-status");
    if (!status) return;
    status.textContent = text;
    status.className = "wallet-status" + (kind ? " is-" + kind : "");
  }

  function parseChainId(value) {
    if (typeof value === "number") return value;
    var text = String(value || "");
    return /^0x/i.test(text) ? parseInt(text, 16) : parseInt(text, 10);
  }

  function chainHex(chainId) {
    return "0x" + chainId.toString(16);
  }

  function readChain(ethereum) {
    return ethereum.request({ method: "eth_chainId" }).then(parseChainId, function () { return NaN; });
  }

  function endFlow(flow) {
    if (wallet.flow !== flow) return false;
    wallet.flow = null;
    wallet.busy = false;
    var button = document.getElementById("pay-wallet");
    if (button) button.removeAttribute("aria-busy");
    return true;
  }

  // The wallet moved to another network: a flow that has not asked for the transfer stops.
  function onChainChanged(value) {
    var flow = wallet.flow;
    var changedTo = parseChainId(value);
    if (!flow || changedTo === flow.chainId) return;
    var where = isNaN(changedTo) ? "another network" : "chain " + changedTo;
    if (flow.requested) {
      // The request names the invoice's chain, so the wallet cannot send it elsewhere.
      say("Your wallet switched to " + where + " while the transfer waits for your confirmation. " +
        "Reject it there if it shows another network than chain " + flow.chainId + ".", "error");
      return;
    }
    flow.stopped = "Your wallet switched to " + where + ", so the payment stopped: nothing was " +
      "sent. Click \u201cPay with wallet\u201d to pay on chain " + flow.chainId + ".";
    if (endFlow(flow)) {
      say(flow.stopped, "error");
      renderPay(state);
    }
  }

  function listenToChain(ethereum) {
    if (wallet.listening || !ethereum || typeof ethereum.on !== "function") return;
    wallet.listening = true;
    ethereum.on("chainChanged", onChainChanged);
  }

  function payWithWallet(button) {
    if (wallet.busy) return;
    var invoice = state && state.invoice;
    var unresolved = unresolvedHashes(state);
    if (!canPay(state, unresolved)) {
      renderPay(state);
      say(unresolved.length || (invoice && invoice.on_its_way)
        ? "A payment is already on its way: nothing more to send."
        : "Nothing is due on this invoice right now.");
      return;
    }
    var ethereum = window.ethereum;
    if (!ethereum || typeof ethereum.request !== "function") {
      say("No browser wallet found \u2014 scan the QR code or paste a transaction hash.", "error");
      return;
    }
    if (typeof BigInt !== "function") {
      say("This browser is too old to build the transfer \u2014 scan the QR code instead.", "error");
      return;
    }
    var chainId = parseInt(invoice.chain_id, 10);
    var units = invoice.due_units;
    var flow = { chainId: chainId, stopped: null, requested: false };
    var account = null;
    wallet.flow = flow;
    wallet.busy = true;
    listenToChain(ethereum);
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    say("Connecting to your wallet\u2026");

    function check() {
      if (flow.stopped) throw userError(flow.stopped);
    }

    ethereum.request({ method: "eth_requestAccounts" })
      .then(function (accounts) {
        check();
        if (!accounts || !accounts.length) throw userError("Your wallet shared no account.");
        account = accounts[0];
        return readChain(ethereum);
      })
      .then(function (current) {
        check();
        if (current === chainId) return current;
        say("Switching your wallet to chain " + chainId + "\u2026");
        return ethereum.request({
          method: "wallet_switchEthereumChain",
          params: [{ chainId: chainHex(chainId) }]
        }).catch(function (error) {
          var nested = error && error.data && error.data.originalError && error.data.originalError.code;
          if (errorCode(error) === 4902 || nested === 4902) {
            throw userError("Add chain " + chainId + " to your wallet first.");
          }
          throw error;
        }).then(function () {
          check();
          // A wallet may answer the switch without switching: ask it where it is now.
          return readChain(ethereum);
        });
      })
      .then(function (current) {
        check();
        if (current !== chainId) {
          throw userError("Your wallet is on " + (isNaN(current) ? "another network" : "chain " + current) +
            ", not on chain " + chainId + " of this invoice, so nothing was sent. Switch it to chain " +
            chainId + " and try again.");
        }
        // Money may have arrived meanwhile (a QR scan, another tab): ask only for what is due now.
        if (!canPay(state, unresolvedHashes(state)) || state.invoice.due_units !== units) {
          throw userError("What is due changed while your wallet connected, so nothing was sent. " +
            "Check the invoice above.");
        }
        var data = transferData(invoice.recipient, units);
        say("Confirm the transfer of " + formatUnits(units, invoice.decimals) + " USDC in your wallet\u2026");
        flow.requested = true;
        return ethereum.request({
          method: "eth_sendTransaction",
          params: [{ from: account, to: invoice.token_address, data: data, chainId: chainHex(chainId) }]
        });
      })
      .then(function (hash) {
        if (typeof hash !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(hash)) {
          throw userError("The wallet returned no transaction hash. Paste it below once it is sent.");
        }
        hash = hash.toLowerCase();
        // Remembered before anything else: whatever happens to this page, the money is on its
        // way and is never asked for again.
        rememberSent(hash);
        resubmits[hash] = Date.now() + RESUBMIT_RETRY_MS; // the form posts it now
        endFlow(flow);
        renderPay(state);
        say("Transaction sent. Checking the payment\u2026", "success");
        submitHash(hash);
      })
      .catch(function (error) {
        if (!endFlow(flow)) return; // stopped already, and said why
        say(walletErrorMessage(error, chainId), "error");
        renderPay(state);
      });
  }

  function setupWallet() {
    var button = document.getElementById("pay-wallet");
    if (!button) return;
    listenToChain(window.ethereum);
    button.addEventListener("click", function () {
      payWithWallet(button);
    });
  }

  /* ------------------------------------------------------------ claim a transfer by signing */

  function utf8Hex(text) {
    var bytes = new TextEncoder().encode(text);
    var hex = "0x";
    for (var i = 0; i < bytes.length; i++) hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return hex;
  }

  function claimErrorMessage(error) {
    if (error && error.userFacing) return error.message;
    var code = errorCode(error);
    if (code === 4001 || code === "ACTION_REJECTED") {
      return "You declined to sign, so the transfer is not claimed. Sign with the wallet that " +
        "sent it to claim it for this job; otherwise it is sent back to its sender.";
    }
    if (code === -32002) return "Your wallet already has a request waiting: open it to continue.";
    if (code === 4100) return "Your wallet has not authorised this site. Connect it and try again.";
    return "Your wallet could not sign the claim: " + ((error && error.message) || String(error));
  }

  function claimTransfer(form, button) {
    if (claiming) return;
    var status = form.querySelector(".claim-status");
    function tell(text, kind) {
      if (!status) return;
      status.textContent = text;
      status.className = "help claim-status" + (kind ? " is-" + kind : "");
    }
    var ethereum = window.ethereum;
    if (!ethereum || typeof ethereum.request !== "function") {
      tell("Claiming needs the browser wallet that sent the transfer, and none was found here.", "error");
      return;
    }
    claiming = true;
    button.disabled = true;
    tell("Connecting to your wallet\u2026");
    ethereum.request({ method: "eth_requestAccounts" })
      .then(function (accounts) {
        if (!accounts || !accounts.length) throw userError("Your wallet shared no account.");
        tell("Sign the claim in your wallet, with the account that sent the transfer\u2026");
        var message = form.getAttribute("data-claim-message") || "";
        return ethereum.request({ method: "personal_sign", params: [utf8Hex(message), accounts[0]] });
      })
      .then(function (signature) {
        if (typeof signature !== "string" || !/^0x([0-9a-fA-F]{2}){65,4096}$/.test(signature)) {
          throw userError("Your wallet returned no usable signature.");
        }
        form.elements.signature.value = signature;
        tell("Signed. Claiming the transfer\u2026", "success");
        HTMLFormElement.prototype.submit.call(form);
      })
      .catch(function (error) {
        claiming = false;
        button.disabled = false;
        tell(claimErrorMessage(error), "error");
      });
  }

  function setupClaims() {
    // Without a script the claim cannot be signed, so its button only shows with one.
    var buttons = document.querySelectorAll(".claim-button");
    Array.prototype.forEach.call(buttons, function (button) { button.hidden = false; });
    var notes = document.querySelectorAll(".claim-nojs");
    Array.prototype.forEach.call(notes, function (note) { note.hidden = true; });
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest(".claim-button") : null;
      var form = button && button.closest(".claim-form");
      if (!form) return;
      event.preventDefault();
      claimTransfer(form, button);
    });
  }

  function setupPay() {
    if (!initial) return;
    renderPay(initial);
    resubmitUnresolved(initial);
    // Another tab of this invoice sent a transfer: stop offering to pay here at once.
    window.addEventListener("storage", function (event) {
      if (event.key === sentKey()) renderPay(state);
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
    setupPay();
    setupWallet();
    setupClaims();
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
