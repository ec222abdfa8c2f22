"""Browser fixtures: Debian's headless chromium driven by Playwright's sync API.

Playwright's own browser download cannot work on these machines, so the tests launch
/usr/bin/chromium (`make test` installs it with scripts/ensure_chromium.sh). Pages are served
by pytest-django's `live_server` (a thread of this process, on the test database, static files
included); paid jobs run on the session's real Celery worker.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium dials out, and this closed network refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
# Generous waits, never timings: a slow machine only makes the tests slower, not red.
TIMEOUT_MS = 60_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="package")
def browser():
    """One headless chromium for the e2e tests, closed before the rest of the suite runs.

    The sync API keeps an asyncio loop running in this thread while the browser is open, and
    Django refuses ORM calls when it sees one (SynchronousOnlyOperation), even though nothing
    here is async. DJANGO_ALLOW_ASYNC_UNSAFE lifts that check for exactly the browser's
    lifetime, the workaround Playwright documents for Django.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (apt-get install chromium)"
        )
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class PageProblems(list):
    """What went wrong in the browser: script errors, console errors, error responses.

    A Content-Security-Policy violation is a console error, so it counts too.
    """

    def watch(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.expected: set[tuple[int, str]] = set()
        page.on("pageerror", lambda error: self.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message) -> None:
        # A failed load is logged too; _response() judges those, with the URL.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        # The admin's pages link no icon, so chromium asks for /favicon.ico, which Vendo does
        # not serve. Every other error response counts (a missing stylesheet or script too).
        if response.url == f"{self.origin}/favicon.ico":
            return
        if (response.status, response.url) in self.expected:
            return
        if response.url.startswith(self.origin) and response.status >= 400:
            self.append(f"HTTP {response.status} {response.request.method} {response.url}")

    def expect_status(self, status: int, path: str) -> None:
        """Accept an error response the test asks for (the 404 or 429 page it visits)."""
        self.expected.add((status, f"{self.origin}{path}"))


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (cookies, storage) per test, on the live server.

    The test fails if the page raised a script error, logged a console error or got an error
    response from the server (a missing stylesheet or script included), favicon.ico aside.
    """
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page, live_server.url)
    page.problems = problems
    try:
        yield page
    finally:
        context.close()
    if problems:
        pytest.fail("The browser reported problems:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def shot(page, screenshot_dir):
    """shot("buyer-01-catalog") saves a full-page screenshot as var/screenshots/<name>.png."""

    def save(name: str) -> Path:
        if not re.fullmatch(r"[a-z]+-\d\d-[a-z0-9-]+", name):
            raise ValueError(f"name screenshots <test>-<step>-<what>, not {name!r}")
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def assert_styled(page: Page) -> None:
    """The stylesheet loaded and applies: the header is laid out by vendo.css, not the UA."""
    display = page.locator(".site-header .nav").evaluate("node => getComputedStyle(node).display")
    assert display == "flex", f"vendo.css did not apply (.nav is display: {display})"


# ------------------------------------------------------------------------------
# An injected browser wallet (EIP-1193) backed by a key in this process
# ------------------------------------------------------------------------------

# window.ethereum as a wallet extension injects it, before the page's own scripts run.
# Every request goes to InjectedWallet.request() through a binding Playwright exposes.
WALLET_SHIM = """
(() => {
  const provider = {
    isVendoE2E: true,
    request({ method, params } = {}) {
      return window.__e2eWallet(method, params || []).then((reply) => {
        if (reply && reply.error) {
          const error = new Error(reply.error.message);
          error.code = reply.error.code;
          throw error;
        }
        return reply ? reply.result : null;
      });
    },
    on() { return provider; },
    removeListener() { return provider; },
  };
  window.ethereum = provider;
})();
"""


class WalletError(Exception):
    """An EIP-1193 provider error: the page reads its numeric `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class InjectedWallet:
    """A browser wallet holding one funded account, as an extension would provide it.

    It starts on another network (Ethereum mainnet, chain 1) and switches when the page asks,
    as a real wallet does. eth_sendTransaction fills in nonce, gas and gas price, signs
    locally with the account's key for the selected chain, broadcasts the raw transaction to
    the node and returns the hash at once, without waiting for it to be mined. Other calls are
    forwarded to the node. Every request is recorded in `calls`, every hash sent in `sent`.
    """

    def __init__(self, w3, address: str, private_key: str, *, chain_id: int = 1) -> None:
        from web3 import Web3

        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.private_key = private_key
        self.chain_id = chain_id
        self.calls: list[tuple[str, list]] = []
        self.sent: list[str] = []

    @property
    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def install(self, page: Page) -> "InjectedWallet":
        page.expose_function("__e2eWallet", self.request)
        page.add_init_script(WALLET_SHIM)
        return self

    def request(self, method: str, params: list) -> dict:
        self.calls.append((method, params))
        try:
            return {"result": self._handle(method, params)}
        except WalletError as error:
            return {"error": {"code": error.code, "message": error.message}}
        except Exception as error:  # what a wallet reports as an internal JSON-RPC error
            return {"error": {"code": -32603, "message": f"{type(error).__name__}: {error}"}}

    def _handle(self, method: str, params: list):
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.address]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "wallet_switchEthereumChain":
            wanted = int(params[0]["chainId"], 16)
            if wanted != self.w3.eth.chain_id:
                raise WalletError(4902, f"Unrecognized chain ID {hex(wanted)}.")
            self.chain_id = wanted
            return None
        if method == "eth_sendTransaction":
            return self._send(params[0])
        reply = self.w3.provider.make_request(method, params)
        if "error" in reply:
            raise WalletError(reply["error"].get("code", -32603), reply["error"]["message"])
        return reply["result"]

    def _send(self, request: dict) -> str:
        from eth_account import Account
        from web3 import Web3

        if Web3.to_checksum_address(request["from"]) != self.address:
            raise WalletError(4100, "The requested account has not been authorized.")
        call = {
            "from": self.address,
            "to": Web3.to_checksum_address(request["to"]),
            "data": request.get("data") or "0x",
            "value": int(request.get("value") or "0x0", 16),
        }
        transaction = {
            **{key: value for key, value in call.items() if key != "from"},
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
            "gas": self.w3.eth.estimate_gas(call),
            "gasPrice": self.w3.eth.gas_price,
        }
        signed = Account.sign_transaction(transaction, self.private_key)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
        self.sent.append(tx_hash)
        return tx_hash
